"""The GraphQL API of Feature Atlas (strawberry on uvicorn).

Modules: ``settings`` (ApiSettings, built at the entry point), ``types`` (GraphQL types, typed errors),
``schema`` (Query/Mutation roots; merges the steering mutation when ``atlas_api.steer_mutation`` exists),
``limits`` (depth/alias/complexity limits, API key for mutations, error masking), ``app`` (the ASGI app:
/graphql with GraphiQL, /healthz, /readyz, /export, CORS). Cypher lives in ``queries``.
"""
