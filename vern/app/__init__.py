"""The application wiring: the web application factory, the CLI, the API description,
migrations and the demo loader. Imports the core and the domains; nothing imports it."""
