-- An HTTP cache on a router, PacketScript's second experiment: the script learns the
-- responses to the GETs it forwards and answers later GETs for a URL it holds itself, as the
-- server would, so the server is not asked again.
--
--   lpctl script load examples/http-cache.lua --name http --fuel max
--   lpctl rule add inet filter forward meta l4proto tcp lua script http
--   lpctl map get http stats hits
--
-- What it caches: `200` answers to a `GET` (request in one segment, no `Range`) that carry a
-- `Content-Length`, no `Transfer-Encoding` and no `Cache-Control` of `no-store`, `no-cache`
-- or `private`, of at most 8 KiB with their headers. Anything else (other methods, large
-- answers, other statuses, answers that arrive out of order) passes untouched and is not
-- learnt. A URL is the server's address and port and the request's path.
--
-- How a hit is answered: the client's handshake has gone through to the server, which waits
-- for the request. The script drops the GET and answers the client from the server's side of
-- the connection (its next sequence number is the GET's acknowledgment) with the stored
-- response in the server's segments (cut to 1448 bytes where the server's stack left them
-- whole for the device: GSO), one segment a call: the GET's call sends the first, each ACK of
-- the client's the next, the last with FIN. The client's segments on that connection are the
-- cache's: dropped; its FIN is acknowledged and the server's end reset with a RST in the
-- client's name. A call sends at most one segment: the heaviest calls (a hit's GET, learning
-- a segment) cost ~40,000-60,000 fuel, and the collector's steps up to ~30,000 more. The
-- stored response is the
-- server's, Date header included: the experiment's cache never expires an entry (an LRU map
-- forgets it). The answer's segments are as large as the server's, so a client with a
-- smaller MSS than the one that taught the cache would get segments too large for it.

local MAX_BYTES = 8192
local MAX_SEGS = 7
local SEG = 1448 -- an Ethernet MTU's TCP payload with timestamps: the largest segment kept
local MAX_PATH = 64
local MAX_HEAD = 2048
local SEQ = 1 << 32 -- sequence numbers wrap

-- "id#i": the i-th segment of a response (id: one per response learnt), payload as sent
local segs = lp.map{name = "segs", type = "lru", key_size = 32, value = "bytes",
                    value_size = SEG, max_entries = 4096}
-- url: its stored response, once whole: id, size, segments
local urls = lp.map{name = "urls", type = "lru", key_size = 128, value = "bytes",
                    value_size = 16, max_entries = 512}
local URL = ">I8I4I2"
-- flow ("client:port"): the response it carries while it is learnt: id, the server's
-- sequence number of its first byte, bytes and segments learnt so far, its size once its
-- headers were read (0 before), then the url
local learning = lp.map{name = "learning", type = "lru", key_size = 64, value = "bytes",
                        value_size = 160, max_entries = 1024}
local LEARN = ">I8I4I4I2I4"
-- flow: a connection the cache answers (its client's segments are the cache's): the
-- response's id, the server's sequence number of its first byte, bytes and segments sent,
-- segments, the client's sequence number of the GET, then the url
local served = lp.map{name = "served", type = "lru", key_size = 64, value = "bytes",
                      value_size = 160, max_entries = 1024}
local SERVED = ">I8I4I4I2I2I4"
local PER_CALL = 1 -- segments a call sends (each ~14,000 fuel; a client acknowledges each
                   -- at first: quick ACKs)
-- hits, misses, uncachable (answers seen and not kept), bytes served, sends refused; ids
local stats = lp.map{name = "stats", max_entries = 8}

-- A header's value in a lowercased header block (`name` as "\r\nname:"), or nil. Plain
-- finds and anchored matches: an unanchored pattern costs ~170 fuel a byte searched.
local function header(h, name)
  local i = h:find(name, 1, true)
  return i and h:match("^[ \t]*([^\r]*)", i + #name)
end

-- The size of a cachable response from its header block, or nil and why.
local function cachable(head)
  if not head:match("^HTTP/1%.[01] 200 ") then return nil, "status" end
  local h = head:lower()
  local cc = header(h, "\r\ncache-control:")
  if cc and (cc:find("no-store", 1, true) or cc:find("no-cache", 1, true)
             or cc:find("private", 1, true)) then
    return nil, "cache-control"
  end
  if header(h, "\r\ntransfer-encoding:") then return nil, "transfer-encoding" end
  local len = tonumber(header(h, "\r\ncontent-length:"))
  if not len then return nil, "no content-length" end
  if #head + len > MAX_BYTES then return nil, "too large" end
  return #head + len
end

local function give_up(flow, url, why)
  stats:add("uncachable", 1)
  learning:delete(flow)
  lp.log("http-cache: " .. url .. " not cached: " .. why)
end

-- A segment of the server's response (with data) on a connection being learnt.
local function learn(flow, t)
  local v = learning:get(flow)
  if not v then return end
  local payload = t.payload
  local id, seq0, have, n, total, rest = string.unpack(LEARN, v)
  local url = v:sub(rest)
  local off = (t.seq - seq0) % SEQ
  if off < have then return end -- a retransmission of what was learnt
  if off > have then return give_up(flow, url, "a segment missed") end
  local len = #payload
  if n + (len + SEG - 1) // SEG > MAX_SEGS or have + len > MAX_BYTES then
    return give_up(flow, url, "too large")
  end
  -- what is kept of this segment: itself (read in place), or pieces of SEG bytes where the
  -- server's stack left it whole for the device to cut (GSO through veths), as the wire
  -- would carry it
  local first = len <= SEG and payload or payload:sub(1, SEG)
  if total == 0 then
    -- the headers: maybe over several segments (busybox httpd sends a CGI's status line
    -- alone), within MAX_HEAD bytes
    local head = first
    if n > 0 then
      local parts = {}
      for i = 1, n do parts[i] = segs:get(id .. "#" .. i) or "" end
      parts[n + 1] = tostring(first)
      head = table.concat(parts)
    end
    local e = head:find("\r\n\r\n", 1, true)
    if e then
      local why
      total, why = cachable(head:sub(1, e + 3))
      if not total then return give_up(flow, url, why) end
    elseif have + len >= MAX_HEAD then
      return give_up(flow, url, "headers too long")
    end
  end
  n = n + 1
  segs:set(id .. "#" .. n, first)
  for a = SEG + 1, len, SEG do
    n = n + 1
    segs:set(id .. "#" .. n, payload:sub(a, a + SEG - 1))
  end
  have = have + len
  if total > 0 and have >= total then
    urls:set(url, string.pack(URL, id, total, n)) -- the next GET's answer
    learning:delete(flow)
  else
    learning:set(flow, string.pack(LEARN, id, seq0, have, n, total) .. url)
  end
end

-- Sends the next (at most PER_CALL) segments of a connection the cache answers; returns its
-- new state (nil: the answer cannot go on).
local function send_more(st)
  local id, base, off, i, n, cseq, url = string.unpack(SERVED, st)
  for _ = 1, PER_CALL do
    if i > n then break end
    local seg = segs:get(id .. "#" .. i)
    if not seg then -- evicted meanwhile: the client's connection ends, it may ask again
      urls:delete(url)
      lp.reply(nil, {seq = (base + off) % SEQ, flags = "RA"})
      return nil
    end
    local ok, why = lp.reply(seg, {seq = (base + off) % SEQ, flags = i == n and "FPA" or "PA"})
    if not ok then
      stats:add("unsent", 1)
      lp.log("http-cache: answer for " .. url .. " not sent: " .. why)
      break -- the client's next ACK asks again
    end
    off, i = off + #seg, i + 1
  end
  return string.pack(SERVED, id, base, off, i, n, cseq) .. url
end

-- A segment of the client's on a connection the cache answers: dropped. Its ACKs clock the
-- answer's next segments out; its FIN is acknowledged, and then the server's end is reset (at
-- the sequence number it expects, the GET's): in a call of its own, as each call here sends
-- at most one segment and ~45,000 fuel leave room for a garbage-collection cycle.
local function on_served(st, flow, ip, t)
  local _, base, off, i, n, cseq = string.unpack(SERVED, st)
  if t.fin then
    lp.reply(nil, {flags = "A"})
    served:delete(flow)
    local ok, why = lp.send(lp.packet.tcp{src = ip.saddr, dst = ip.daddr, sport = t.sport,
                                          dport = t.dport, seq = cseq, flags = "R"})
    if not ok then lp.log("http-cache: no reset to the server: " .. why) end
    return
  end
  if i <= n and t.ack and t.ack_seq == (base + off) % SEQ then
    st = send_more(st)
    if st then served:set(flow, st) else served:delete(flow) end
  end
end

function process_packet(pkt)
  local t, ip = pkt.tcp, pkt.ip or pkt.ip6
  if not (t and ip) then return lp.CONTINUE end
  if t.sport == 80 then
    if #t.payload > 0 then learn(ip.daddr .. ":" .. t.dport, t) end
    return lp.CONTINUE
  end
  if t.dport ~= 80 then return lp.CONTINUE end
  local flow = ip.saddr .. ":" .. t.sport
  local st = served:get(flow)
  if st then
    on_served(st, flow, ip, t)
    return lp.DROP
  end
  local p = t.payload
  if #p < 16 or p:sub(1, 4) ~= "GET " then return lp.CONTINUE end
  local e = p:find("\r\n\r\n", 1, true)
  if not e or e > 1024 then return lp.CONTINUE end -- not one whole request
  local req = p:sub(1, e + 3)
  local path = req:match("^GET (/%S*) HTTP/1%.[01]\r\n")
  if not path or #path > MAX_PATH or req:lower():find("\r\nrange:", 1, true) then
    return lp.CONTINUE
  end
  local url = ip.daddr .. ":" .. t.dport .. path
  local v = urls:get(url)
  if v then
    -- a hit: answered from the server's side, its next sequence number the GET's ack
    local id, total, n = string.unpack(URL, v)
    st = send_more(string.pack(SERVED, id, t.ack_seq, 0, 1, n, t.seq) .. url)
    if st then served:set(flow, st) end
    stats:add("hits", 1)
    stats:add("bytes", total)
    return lp.DROP
  end
  -- a miss: the server answers, and the cache learns
  stats:add("misses", 1)
  learning:set(flow, string.pack(LEARN, stats:add("ids", 1), t.ack_seq, 0, 0, 0) .. url)
  return lp.CONTINUE
end
