-- GET /openapi.json: an OpenAPI 3.1 document generated from the route
-- registry (tf.routes(): method, path, auth, body limit and the `doc` each
-- route declares in its tf.route options) plus the routes the core serves
-- itself (/health, /metrics, /admin/*). Nothing here is written by hand per
-- plugin route: add `doc = { summary=, description=, params=, response= }`
-- to a route's options and it shows up. Open (auth "none"): it names routes,
-- never data.
--
-- doc fields: summary, description, content_type (of the 200 answer when not
-- JSON, e.g. "text/html"), params = { { name=, type=, required=, description=,
-- enum= }, ... } (query parameters, or path parameters when the path has
-- {name}), body = a JSON schema of the request body, response = a JSON schema
-- of the 200 answer, formats = { "json", "csv" }, tags = { ... }.

local ERROR_SCHEMA = {
  type = "object", required = { "ok", "error" },
  properties = { ok = { type = "boolean", enum = { false } }, error = { type = "string" },
                 param = { type = "string", description = "the parameter or setting at fault" },
                 request_id = { type = "string" } },
}

-- The routes core/http.c serves in C (they are not in tf.routes()).
local BUILTIN = {
  { method = "GET", path = "/health", auth = "none", doc = {
    summary = "Liveness: the process answers; says whether the database does",
    response = { type = "object", required = { "status" }, properties = { status = { type = "string" } } } } },
  { method = "GET", path = "/metrics", auth = tf.config.get("auth.metrics_open", true) == false and "read" or "none", doc = {
    summary = "Prometheus text format (open unless auth.metrics_open = false, then role read)", content_type = "text/plain" } },
  { method = "POST", path = "/admin/reload", auth = "admin", doc = {
    summary = "Reloads config and plugins; answers the new generation or the error (422)",
    response = { type = "object", required = { "ok", "generation" },
      properties = { ok = { type = "boolean" }, generation = { type = "integer" } } } } },
  { method = "GET", path = "/admin/status", auth = "admin", doc = {
    summary = "Version, generation, last reload (and its error), routes",
    response = { type = "object", required = { "version", "generation", "last_reload", "routes" }, properties = {
      version = { type = "string" }, generation = { type = "integer" }, uptime_s = { type = "integer" },
      last_reload = { type = "object", properties = { ok = { type = "boolean" }, error = { type = { "string", "null" } } } },
      routes = { type = "array", items = { type = "object", required = { "method", "path", "auth", "max_body" } } } } } } },
  { method = "GET", path = "/admin/jobs", auth = "admin", doc = {
    summary = "Jobs: schedule, next and last runs, last error, recent history",
    response = { type = "object", required = { "jobs" }, properties = { jobs = { type = "array" } } } } },
  { method = "POST", path = "/admin/jobs/{name}/run", auth = "admin", doc = {
    summary = "Runs a job now and answers its run record",
    params = { { name = "name", type = "string", required = true, description = "The job's name" } } } },
}

local function security(auth)
  if auth == "none" then return tf.json.array({}) end
  return { { ApiKeyHeader = tf.json.array({}) }, { Bearer = tf.json.array({}) } }
end

local function operation(r)
  local doc = r.doc or {}
  local op = {
    summary = doc.summary or (r.method .. " " .. r.path),
    operationId = (r.method:lower() .. r.path:gsub("[{}]", ""):gsub("[^%w]+", "_")):gsub("_$", ""),
    security = security(r.auth),
    ["x-tickforge-auth"] = r.auth,
    responses = {},
  }
  if doc.description then op.description = doc.description end
  if doc.tags then op.tags = doc.tags end
  if r.max_body and r.method ~= "GET" and r.method ~= "HEAD" then op["x-tickforge-max-body"] = r.max_body end
  local params = {}
  for _, p in ipairs(doc.params or {}) do
    local in_path = r.path:find("{" .. p.name .. "}", 1, true) ~= nil
    local schema = { type = p.type or "string" }
    if p.enum then schema.enum = p.enum end
    params[#params + 1] = tf.json.order({ name = p.name, ["in"] = in_path and "path" or "query",
      required = in_path or p.required == true, description = p.description, schema = schema },
      { "name", "in", "required", "description", "schema" })
  end
  for seg in r.path:gmatch("{([%w_]+)}") do -- a path parameter the doc did not describe
    local found = false
    for _, p in ipairs(params) do if p.name == seg then found = true end end
    if not found then params[#params + 1] = { name = seg, ["in"] = "path", required = true, schema = { type = "string" } } end
  end
  if #params > 0 then op.parameters = params end
  if doc.body then
    op.requestBody = { required = true, content = { ["application/json"] = { schema = doc.body } } }
  end
  local ok = { description = doc.summary or "OK", content = {} }
  if doc.content_type then
    ok.content[doc.content_type] = { schema = { type = "string" } }
  else
    ok.content["application/json"] = { schema = doc.response or { type = "object" } }
  end
  for _, f in ipairs(doc.formats or {}) do
    if f == "csv" then ok.content["text/csv"] = { schema = { type = "string" } } end
  end
  local err = { content = { ["application/json"] = { schema = { ["$ref"] = "#/components/schemas/Error" } } } }
  local function e(desc) return { description = desc, content = err.content } end
  op.responses[tostring(doc.status or 200)] = ok
  if #params > 0 or doc.body then op.responses["400"] = e("A bad parameter or body: error names it") end
  if r.auth ~= "none" then
    op.responses["401"] = e("Missing or invalid API key")
    op.responses["403"] = e("The key lacks the " .. r.auth .. " role")
  end
  if r.method == "POST" or r.method == "PUT" or r.method == "PATCH" then
    op.responses["413"] = e("Body larger than " .. tostring(r.max_body) .. " bytes")
  end
  op.responses["503"] = e("Database unavailable or every worker busy; retry (Retry-After)")
  tf.json.order(op.responses, { "200", "201", "202", "204", "400", "401", "403", "413", "503" })
  return tf.json.order(op, { "summary", "description", "operationId", "tags", "security", "x-tickforge-auth",
    "x-tickforge-max-body", "parameters", "requestBody", "responses" })
end

local function document()
  local paths, order = {}, {}
  local function add(r)
    if not paths[r.path] then order[#order + 1] = r.path end
    paths[r.path] = paths[r.path] or {}
    paths[r.path][r.method:lower()] = operation(r)
  end
  for _, r in ipairs(BUILTIN) do add(r) end
  for _, r in ipairs(tf.routes()) do add(r) end
  tf.json.order(paths, order)
  return tf.json.order({
    openapi = "3.1.0",
    info = { title = "tickforge", version = "1",
      description = "Market data server for MetaTrader 5. Send the API key in X-API-Key or as Authorization: Bearer." },
    paths = paths,
    components = {
      securitySchemes = {
        ApiKeyHeader = { type = "apiKey", ["in"] = "header", name = "X-API-Key" },
        Bearer = { type = "http", scheme = "bearer" },
      },
      schemas = { Error = ERROR_SCHEMA },
    },
  }, { "openapi", "info", "paths", "components" })
end

tf.route("GET", "/openapi.json", function()
  return 200, document()
end, { auth = "none", doc = {
  summary = "This document: OpenAPI 3.1, generated from the route registry",
  response = { type = "object", required = { "openapi", "info", "paths", "components" },
    properties = { openapi = { type = "string", enum = { "3.1.0" } }, paths = { type = "object" } } },
} })
