-- Registers the shipped jobs with the scheduler; their code is in
-- lua/tickforge/jobs/<name>.lua (each one small, to read and copy). Every
-- schedule and setting comes from the config's `jobs` section (see
-- config/tickforge.lua and docs/jobs.md); a wrong value stops the load
-- (and a reload) with an error naming the key. Registers only: never runs a
-- job or touches the database while loading.
--
--   jobs = {
--     enabled = true,                           -- false: register none of them
--     tick_aggregator = { every = "5s", timeout = "60s", price = "mid" },
--     rollups         = { every = "1m" },
--     indicators      = { every = "60s" },
--     strategies      = { every = "1m" },
--     maintenance     = { cron = "17 3 * * *" },
--   }
local config = require("tickforge.jobs.config")

local SHIPPED = {
  -- name, default schedule, default timeout, settings checked at load (the
  -- indicators and strategies jobs name sets and strategies other plugins
  -- may define after this one, so theirs are checked once every plugin has
  -- loaded, and again when they run)
  { "tick_aggregator", { every = "5s" }, "60s", true },
  { "rollups", { every = "1m" }, "120s", true },
  { "indicators", { every = "60s" }, "300s", false },
  { "strategies", { every = "1m" }, "120s", false },
  { "maintenance", { cron = "17 3 * * *" }, "30m", true },
}

if tf.config.get("jobs.enabled", true) == false then return end

for _, job in ipairs(SHIPPED) do
  local name, schedule, timeout, check_now = job[1], job[2], job[3], job[4]
  local c = config.section(name)
  local module = require("tickforge.jobs." .. name)
  if check_now then module.settings() else require("tickforge.check").after_load(module.settings) end
  local enabled = c:raw("enabled")
  if enabled ~= nil and type(enabled) ~= "boolean" then c:fail("enabled", "must be true or false") end
  local opts = {
    timeout = c:raw("timeout") or timeout,
    overlap = c:raw("overlap") or "skip",
    jitter = c:raw("jitter"),
    run_at_start = c:raw("run_at_start"),
    enabled = enabled ~= false,
  }
  local cron, every = c:raw("cron"), c:raw("every")
  if cron ~= nil and every ~= nil then c:fail("cron", "give either every or cron, not both") end
  if cron == nil and every == nil then cron, every = schedule.cron, schedule.every end
  -- the pcall names the config section a bad schedule or option came from
  -- (jobs.rollups: tf.job.every: interval must be ...), not this file's line
  local ok, err = pcall(cron ~= nil and tf.job.cron or tf.job.every, name, cron or every, module.run, opts)
  if not ok then error("jobs." .. name .. ": " .. tostring(err), 0) end
end
