-- A sample plugin: the smallest route there is, and a template to copy.
--   curl localhost:8080/hello/world        -> {"hello":"world","generation":...}
-- Edit it while the server runs, then `kill -HUP <pid>` or
-- POST /admin/reload with an admin key: the answer changes without a restart.

tf.route("GET", "/hello/{name}", function(req)
  return 200, { hello = req.params.name, time = os.time() }
end, { auth = "none", doc = {
  summary = "A sample plugin route: greets {name}",
  params = { { name = "name", type = "string", description = "Who to greet" } },
  response = { type = "object", required = { "hello", "time" },
    properties = { hello = { type = "string" }, time = { type = "integer" } } },
} })
