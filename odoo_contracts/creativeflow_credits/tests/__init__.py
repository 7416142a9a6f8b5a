from . import test_ai_model
from . import test_credit_account
from . import test_credit_concurrency
from . import test_credit_ledger
from . import test_credit_service
from . import test_generated_asset
from . import test_technical_user
