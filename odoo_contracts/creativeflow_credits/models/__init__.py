from . import ai_model
from . import credit_account
from . import credit_ledger
from . import credit_service
from . import generated_asset
from . import subscription_tier
