-- Many tokens at once: `WRK_TOKENS=FILE WRK_THREADS=N wrk -tN … -s <this + wrk-report.lua> URL`,
-- FILE holding one token a line.
-- wrk gives Lua no connection of its own, only a state per thread, so each
-- thread takes its share of the tokens (one per connection: 32 tokens for
-- -c32) and sends its requests with them in turn. Every token then carries
-- one connection's worth of the load, as if each connection had its own.
local next_thread = 0
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

local headers = {}
local sent = 0
function init(args)
  local file, threads = os.getenv("WRK_TOKENS"), tonumber(os.getenv("WRK_THREADS"))
  local line_number = 0
  for token in io.lines(file) do
    if line_number % threads == thread_index then
      table.insert(headers, { Authorization = "Bearer " .. token })
    end
    line_number = line_number + 1
  end
  assert(#headers > 0, "no token for thread " .. thread_index)
end

function request()
  sent = sent + 1
  return wrk.format(nil, nil, headers[sent % #headers + 1])
end
