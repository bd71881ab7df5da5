-- Shared by the commands written in Lua (tickforge backtest, tickforge
-- export; core/main.c runs them in script mode): the option parser and the
-- plugin loader. A bad argument raises a usage error (a table), which the
-- command prints and turns into exit status 2; nothing here exits itself.
local M = {}

--- usage_error(fmt, ...): raises an error that main() reports with status 2.
function M.usage_error(fmt, ...)
  error({ usage = string.format(fmt, ...) }, 0)
end

--- parse(argv, spec) -> opts, positional. spec: { name = kind } with kind
-- "string" | "number" | "flag" | "multi" (repeatable string, a list). Takes
-- --name value and --name=value.
function M.parse(argv, spec)
  local opts, pos, i = {}, {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for k = i + 1, #argv do pos[#pos + 1] = argv[k] end
      break
    end
    if a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
      name = name or a:sub(3)
      local kind = spec[name]
      if name == "config" then
        M.usage_error("--config must come right after the command name (tickforge %s --config FILE ...)", arg and arg[0] or "")
      end
      if not kind then M.usage_error("unknown option --%s (see --help)", name) end
      if kind == "flag" then
        if value then M.usage_error("--%s takes no value", name) end
        opts[name] = true
      else
        if not value then
          i = i + 1
          value = argv[i]
          if value == nil then M.usage_error("--%s needs a value", name) end
        end
        if kind == "number" then
          local v = tonumber(value)
          if not v or v ~= v then M.usage_error("--%s: '%s' is not a number", name, value) end
          opts[name] = v
        elseif kind == "multi" then
          opts[name] = opts[name] or {}
          table.insert(opts[name], value)
        else
          opts[name] = value
        end
      end
    elseif a:sub(1, 1) == "-" and #a > 1 and not tonumber(a) then
      M.usage_error("unknown option %s (see --help)", a)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

--- list(values) -> the comma-separated items of every value, in order.
function M.list(values)
  local out = {}
  for _, v in ipairs(values or {}) do
    for item in v:gmatch("[^,]+") do out[#out + 1] = item end
  end
  return out
end

--- load_plugins() -> { errors }: runs the config's plugins (plugins.dir,
-- plugins.enabled/disabled) in this VM so their strategies and indicator
-- sets are registered, as in the server. Routes and jobs are not served
-- here: tf.route and tf.job are ignored while they load.
function M.load_plugins()
  local dir = tf.config.get("plugins.dir", "plugins")
  local ppath = dir .. "/?.lua;" .. dir .. "/?/init.lua"
  if not package.path:find(ppath, 1, true) then package.path = ppath .. ";" .. package.path end
  for name in pairs(package.loaded) do -- a second load runs the plugins' modules again, as a reload does
    if type(name) == "string" and package.searchpath(name, ppath) then package.loaded[name] = nil end
  end
  local files = {}
  local enabled = tf.config.get("plugins.enabled")
  if type(enabled) == "table" then
    for _, name in ipairs(enabled) do files[#files + 1] = name end
  else
    local p = io.popen("ls -1 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
    for name in p:lines() do
      if name:match("%.lua$") then files[#files + 1] = name
      else
        local f = io.open(dir .. "/" .. name .. "/init.lua")
        if f then f:close(); files[#files + 1] = name .. "/init.lua" end
      end
    end
    p:close()
    table.sort(files)
  end
  local disabled = {}
  for _, name in ipairs(tf.config.get("plugins.disabled", {})) do disabled[name] = true end
  local route, job = rawget(tf, "route"), rawget(tf, "job")
  rawset(tf, "route", function() end)
  rawset(tf, "job", { every = function() end, cron = function() end })
  local errors = {}
  for _, f in ipairs(files) do
    local base = f:gsub("/init%.lua$", ""):gsub("%.lua$", "")
    if not (disabled[base] or disabled[f]) then
      local chunk, err = loadfile(dir .. "/" .. f, "t")
      local ok = chunk ~= nil
      if ok then ok, err = pcall(chunk) end
      if not ok then errors[#errors + 1] = tostring(err) end
    end
  end
  rawset(tf, "route", route)
  rawset(tf, "job", job)
  return errors
end

--- run(main, name, ...) -> exit status: calls main(...), printing a usage
-- error with status 2 and any other error with status 1.
function M.run(main, name, ...)
  local ok, rc = pcall(main, ...)
  if ok then return rc or 0 end
  if type(rc) == "table" and rc.usage then
    io.stderr:write(string.format("tickforge %s: %s\n", name, rc.usage))
    return 2
  end
  io.stderr:write(string.format("tickforge %s: %s\n", name, tostring(rc)))
  return 1
end

return M
