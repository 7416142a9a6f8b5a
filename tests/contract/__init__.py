"""The Odoo credit contract suite: see "Running the contract suite" in odoo_contracts/README.md."""
