-- POST /candle on tickforge, after bench/candle_validate.lua: decode one
-- candle, validate it, answer a small JSON.
tf.route("POST", "/candle", function(req)
  local ok, c = pcall(tf.json.decode, req.body)
  if not ok then return 400, { ok = false, error = "invalid JSON" } end
  local answer, err = validate(c)
  if not answer then return 400, { ok = false, error = err } end
  return 200, answer
end, { auth = "none" })
