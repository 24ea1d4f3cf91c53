from billing.catalog.loader import CatalogError, load_catalog
from billing.catalog.models import Catalog, Customer, Metric, Plan, Subscription

__all__ = ["Catalog", "CatalogError", "Customer", "Metric", "Plan", "Subscription", "load_catalog"]
