"""The parties on an invoice: addresses and tax ids in Orb's shapes (a customer's
``billing_address``, ``shipping_address`` and ``tax_id``), and the seller the catalog
folder names (``seller``, docs/invoicing.md#the-document).

Countries are ISO 3166-1 alpha-2 codes (CLDR's, through Babel); tax id types and their
countries are the ones Orb lists (``orb/types/shared/customer_tax_id.py``).
"""

from __future__ import annotations

from functools import cache
from string import Formatter
from typing import Annotated

from babel import Locale
from pydantic import AfterValidator, Field, model_validator

from billing.catalog.fields import Strict


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# CLDR territories with two letters that are not ISO 3166-1 countries: groupings, user
# codes, unknown.
_NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "XA", "XB", "XK", "ZZ"})
# Where US Letter is the usual paper (CLDR's supplemental ``paperSize``); A4 elsewhere.
LETTER_COUNTRIES = _codes("BZ CA CL CO CR GT MX NI PA PH PR SV US VE")

# Orb's tax id countries and types, as its API takes them.
TAX_ID_COUNTRIES = _codes("""
AD AE AL AM AO AR AT AU AW AZ BA BB BD BE BF BG BH BJ BO BR BS BY CA CD CH CL CM CN
CO CR CV CY CZ DE DK DO EC EE EG ES ET EU FI FO FR GB GE GI GN GR HK HR HU ID IE IL
IN IS IT JP KE KG KH KR KZ LA LI LK LT LU LV MA MD ME MK MR MT MX MY NG NL NO NP NZ
OM PE PH PL PT PY RO RS RU SA SE SG SI SK SN SR SV TH TJ TR TW TZ UA UG US UY UZ VE
VN ZA ZM ZW""")
TAX_ID_TYPES = _codes("""
ad_nrt ae_trn al_tin am_tin ao_tin ar_cuit au_abn au_arn aw_tin az_tin ba_tin bb_tin
bd_bin bf_ifu bg_uic bh_vat bj_ifu bo_tin br_cnpj br_cpf bs_tin by_tin ca_bn
ca_gst_hst ca_pst_bc ca_pst_mb ca_pst_sk ca_qst cd_nif ch_uid ch_vat cl_tin cm_niu
cn_tin co_nit cr_tin cv_nif de_stn do_rcn ec_ruc eg_tin es_cif et_tin eu_oss_vat
eu_vat fo_vat gb_vat ge_vat gi_tin gn_nif hk_br hr_oib hu_tin id_npwp il_vat in_gst
is_vat it_cf jp_cn jp_rn jp_trn ke_pin kg_tin kh_tin kr_brn kz_bin la_tin li_uid
li_vat lk_vat ma_vat md_vat me_pib mk_vat mr_nif mx_rfc my_frp my_itn my_sst ng_tin
no_vat no_voec np_pan nz_gst om_vat pe_ruc ph_tin pl_nip py_ruc ro_tin rs_pib ru_inn
ru_kpp sa_vat sg_gst sg_uen si_tin sn_ninea sr_fin sv_nit th_vat tj_tin tr_tin
tw_vat tz_vat ua_vat ug_tin us_ein uy_ruc uz_tin uz_vat ve_rif vn_tin za_vat zm_tin
zw_tin""")
# Orb's table: eu_vat is a member state's (and Northern Ireland's, under GB); every other
# type starts with its country's code.
EU_VAT_COUNTRIES = _codes(
    "AT BE BG CY CZ DE DK EE ES FI FR GB GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK")


@cache
def countries() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code to English name."""
    return {code: name for code, name in Locale("en").territories.items()
            if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES}


def _country(code: str) -> str:
    if code not in countries():
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code such as US or FR, "
                         f"got {code!r}")
    return code


Country = Annotated[str, AfterValidator(_country)]
Line = Annotated[str, Field(min_length=1, max_length=256)]


class Address(Strict):
    """Orb's ``Address``: every field optional."""

    line1: Line | None = None
    line2: Line | None = None
    city: Line | None = None
    state: Line | None = None
    postal_code: Line | None = None
    country: Country | None = None

    def lines(self) -> list[str]:
        """As printed on a document: street lines, then city, state and postal code on
        one line, then the country's name."""
        place = " ".join(p for p in (", ".join(p for p in (self.city, self.state) if p),
                                     self.postal_code) if p)
        country = countries()[self.country] if self.country else None
        return [line for line in (self.line1, self.line2, place, country) if line]


class TaxId(Strict):
    """Orb's ``CustomerTaxID``: a type and country from Orb's list, and the number."""

    country: str
    type: str
    value: Annotated[str, Field(min_length=1, max_length=64)]

    @model_validator(mode="after")
    def _known(self) -> TaxId:
        if self.country not in TAX_ID_COUNTRIES:
            raise ValueError(f"tax_id.country {self.country!r} is not one Orb takes tax ids "
                             "for")
        if self.type not in TAX_ID_TYPES:
            raise ValueError(f"tax_id.type {self.type!r} is not one of Orb's tax id types "
                             "(eu_vat, gb_vat, us_ein, ...)")
        fits = (self.country in EU_VAT_COUNTRIES if self.type == "eu_vat"
                else self.type.split("_", 1)[0] == self.country.lower())
        if not fits:
            raise ValueError(f"tax_id.type {self.type!r} is not a tax id of country "
                             f"{self.country!r}")
        return self


def _pay_link(template: str) -> str:
    names = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    if names - {"number"}:
        raise ValueError(f"pay_link may only hold {{number}}, the invoice's number; got "
                         f"{sorted(names - {'number'})}")
    if not template.startswith("https://"):
        raise ValueError(f"pay_link must be an https:// address, got {template!r}")
    return template


class Seller(Strict):
    """Who issues the documents: the ``seller`` section of the catalog folder."""

    name: Annotated[str, Field(min_length=1)]
    address: Address | None = None
    tax_id: TaxId | None = None
    email: str | None = None
    # How to pay: shown on every invoice (bank details, a remittance address).
    payment_instructions: str | None = None
    # A pay page per invoice, ``{number}`` being its number; shown above the instructions.
    pay_link: Annotated[str, AfterValidator(_pay_link)] | None = None

    def pay_url(self, number: str) -> str | None:
        return None if self.pay_link is None else self.pay_link.format(number=number)
