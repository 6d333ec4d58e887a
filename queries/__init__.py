"""The bottom layer of Feature Atlas: the graph contract and every Cypher statement.

Depends on the neo4j driver and pydantic only (no torch, faiss or strawberry), so every other
package can import it cheaply. Modules:

- ``errors``   the one exception tree of the project (every expected failure is an ``AtlasError``)
- ``ids``      feature identity: ``{atlas}/{layer}-{module}/{index}`` and the paper's ``12/res/77``
- ``settings`` Neo4j connection settings (``NEO4J_URI`` ... as Neo4j's own tools name them)
- ``db``       a small synchronous client: timeouts, read/write routing, errors mapped to ``AtlasError``
- ``schema``   labels, properties, constraints and indexes of the graph
"""
