from . import credit_adjust_wizard
