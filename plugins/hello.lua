-- A sample plugin: the smallest route there is, and a template to copy.
--   curl localhost:8080/hello/world        -> {"ok":true,"hello":"world","time":...}
-- Edit it while the server runs, then `kill -HUP <pid>` or
-- POST /admin/reload with an admin key: the answer changes without a restart.

tf.route("GET", "/hello/{name}", function(req)
  return 200, { ok = true, hello = req.params.name, time = os.time() }
end, { auth = "none", doc = {
  summary = "A sample plugin route: greets {name}",
  params = { { name = "name", type = "string", description = "Who to greet" } },
  response = { type = "object", required = { "ok", "hello", "time" },
    properties = { ok = { type = "boolean" }, hello = { type = "string" }, time = { type = "integer" } } },
} })
