"""The local stack, a distribution of its own that production never installs: the Odoo
emulator, the n8n simulator, the notification sink, ``FakeCredits`` for the unit tier, and the
``creativeflow dev`` command that runs them with the API."""
