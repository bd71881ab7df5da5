-- GET /ui: the status page. One HTML page and one script (plugins/ui/index.html,
-- plugins/ui/app.js, read once at load with tf.file.read) plus TradingView's
-- lightweight-charts, which `make deps` fetches from the npm registry into
-- build/ui/ (never committed, never loaded from a CDN). The page itself holds
-- no data and is open; it asks for an API key once (kept in the tab's
-- sessionStorage) and reads everything through the API with it: /health,
-- /openapi.json, /symbols, /candles (role read), /metrics, /stats, and
-- /admin/status, /admin/jobs when the key has the admin role.
--
-- Settings, all optional, in the config file's `ui` section:
--   ui = {
--     enabled = true,       -- false: no /ui routes
--     charts_js = nil,      -- path of lightweight-charts.standalone.production.js
--                           -- (default: <plugins.dir>/../build/ui/..., where make deps puts it)
--   }
local cfg = tf.config.ui or {}
if cfg.enabled == false then return end

local plugins_dir = tf.config.get("plugins.dir", "plugins")
local here = plugins_dir .. "/ui/"
local html = assert(tf.file.read(here .. "index.html"))
local app = assert(tf.file.read(here .. "app.js"))
local charts_path = cfg.charts_js or (plugins_dir .. "/../build/ui/lightweight-charts.standalone.production.js")
if cfg.charts_js ~= nil and type(cfg.charts_js) ~= "string" then error("config ui.charts_js: must be a path", 0) end
local charts, charts_err = tf.file.read(charts_path)
if not charts then
  tf.log.warn("ui: no chart library; run `make deps` to fetch lightweight-charts into build/ui/", { error = charts_err })
end

local NO_CACHE = "no-cache"

tf.route("GET", "/ui", function()
  return 200, html, { ["Content-Type"] = "text/html; charset=utf-8", ["Cache-Control"] = NO_CACHE }
end, { auth = "none", doc = {
  summary = "The status page: routes, jobs, reloads, ingest rates, cache, and a candle chart with indicators",
  description = "Open; the page asks for an API key (read role; admin shows jobs and reload errors too) and " ..
    "keeps it in the tab's sessionStorage.",
  content_type = "text/html",
} })

tf.route("GET", "/ui/app.js", function()
  return 200, app, { ["Content-Type"] = "text/javascript; charset=utf-8", ["Cache-Control"] = NO_CACHE }
end, { auth = "none", doc = { summary = "The status page's script", content_type = "text/javascript" } })

tf.route("GET", "/ui/lightweight-charts.js", function()
  if not charts then
    return 404, "// lightweight-charts is not installed: run `make deps` (it fetches it from the npm registry into build/ui/)\n",
      { ["Content-Type"] = "text/javascript; charset=utf-8" }
  end
  return 200, charts, { ["Content-Type"] = "text/javascript; charset=utf-8", ["Cache-Control"] = "max-age=86400" }
end, { auth = "none", doc = {
  summary = "TradingView lightweight-charts (Apache-2.0), as fetched by make deps; 404 with how to get it when missing",
  content_type = "text/javascript",
} })
