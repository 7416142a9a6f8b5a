"""The Odoo credit contract suite (see ``odoo_contracts/README.md``, "Running the contract suite")."""
