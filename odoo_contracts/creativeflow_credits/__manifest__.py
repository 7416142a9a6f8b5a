# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
{
    "name": "CreativeFlow Credits",
    "summary": "Subscription tiers, credit balances and an immutable credit ledger "
    "for the CreativeFlow AI generation orchestrator",
    "version": "18.0.1.5.0",
    "category": "Sales/Subscriptions",
    "author": "CreativeFlow",
    "license": "LGPL-3",
    "depends": ["base"],
    "data": [
        "security/creativeflow_credits_security.xml",
        "security/ir.model.access.csv",
        "data/creativeflow_ai_model_data.xml",
        "wizards/credit_adjust_wizard_views.xml",
        "views/ai_model_views.xml",
        "views/subscription_tier_views.xml",
        "views/generated_asset_views.xml",
        "views/credit_ledger_views.xml",
        "views/credit_account_views.xml",
        "views/creativeflow_credits_menus.xml",
    ],
    "demo": [
        "demo/creativeflow_credits_demo.xml",
    ],
    "installable": True,
    "application": True,
}
