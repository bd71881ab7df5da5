-- An example configuration that serves the product catalog
-- (plugins/catalog, docs/catalog.md) next to everything else:
--
--   make run                                            # once, for the database
--   build/tickforge migrate --config config/examples/catalog.lua
--   build/tickforge serve --config config/examples/catalog.lua
--   curl -s -H 'X-API-Key: dev-ingest-key' localhost:8080/products \
--        -d '{"name":"Cafeteira","description":"Casa","price":199.90,"stock":7,"category":"casa"}'
--   curl -s -H 'X-API-Key: dev-ingest-key' localhost:8080/products/1
--   curl -s -H 'X-API-Key: dev-ingest-key' localhost:8080/catalog/stats
--
-- It starts from the shipped config/tickforge.lua (every key documented
-- there) and changes only what the catalog needs. DATABASE_URL,
-- TICKFORGE_API_KEY and the other environment variables apply as usual.
local cfg = dofile("config/tickforge.lua")

cfg.catalog = {
  enabled = true,        -- serve /products, /products/{id}, /catalog/stats, /services, /catalog/cache
  cache_ttl = 300,       -- seconds (the seed's 5 minutes); writes drop what they change at once
  max_limit = 100,       -- largest ?limit= of GET /products
  write_role = "ingest", -- keys with this role may create, change and delete products
}

-- A development key with roles ingest + read (never ship it):
cfg.auth.keys = { { key = "dev-ingest-key", roles = { "ingest", "read" }, name = "dev" } }

return cfg
