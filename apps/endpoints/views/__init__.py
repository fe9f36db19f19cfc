"""The browser studio's pages of apps/endpoints, one module per page: models, environments, endpoints
(list, wizard, Details tab), deployments (cards, add, estimate), traffic, scoring (the Test tab),
consume, logs, events. `common` holds what they share. The Monitoring pages are in apps/monitoring,
the Costs pages in apps/costs.

Views are thin: writes go through services.py, reads through selectors.py; an ApplicationError
becomes a form error.
"""
