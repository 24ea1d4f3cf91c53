from billing.catalog.loader import CatalogError, parse_catalog
from billing.catalog.models import Catalog, Customer, Metric, Plan, Subscription

__all__ = ["Catalog", "CatalogError", "Customer", "Metric", "Plan", "Subscription",
           "parse_catalog"]
