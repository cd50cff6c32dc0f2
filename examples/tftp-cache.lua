-- A TFTP cache on a router, PacketScript's experiment: the script learns the files of the
-- transfers it forwards, block by block, and answers later read requests for a file it holds
-- whole itself, as the server would, so the server is not asked again.
--
--   lpctl script load examples/tftp-cache.lua --name tftp
--   lpctl rule add inet filter forward meta l4proto udp lua script tftp
--   lpctl map get tftp stats hits
--
-- A transfer (RFC 1350): the client's read request (RRQ) goes to port 69; the server answers
-- from a port of its own with DATA blocks of 512 bytes, each acknowledged (ACK) by the client;
-- a block shorter than 512 bytes (maybe empty) is the last. Options in the request (busybox
-- asks for "tsize") are answered by the server with an OACK, which the cache does not need:
-- it answers a request with the first block, which tells a client its options were declined.
-- The cache's answers come from port 69 of the server's address, so the client's ACKs come
-- back to port 69, where the script answers each with the next block.

local BLOCK = 512
local RRQ, DATA, ACK, ERROR = 1, 3, 4, 5

-- "file#n": the DATA message carrying block n of a file being or having been learnt, as the
-- server sent it (answered as it is: no copy to make per packet)
local blocks = lp.map{name = "blocks", type = "lru", key_size = 72, value = "bytes",
                      value_size = 4 + BLOCK, max_entries = 8192}
-- file: its number of blocks, once the last was seen
local files = lp.map{name = "files", type = "lru", key_size = 64, max_entries = 1024}
-- "client:port": the file the server is sending it (learning) or the cache is (serving)
local learning = lp.map{name = "learning", type = "lru", key_size = 64, value = "bytes",
                        value_size = 64, max_entries = 1024}
local serving = lp.map{name = "serving", type = "lru", key_size = 64, value = "bytes",
                       value_size = 64, max_entries = 1024}
-- hits, misses, blocks served, answers that could not be sent
local stats = lp.map{name = "stats", max_entries = 8}

-- DATA block n of `file`, or nil when the cache lost it
local function data(file, n)
  return blocks:get(file .. "#" .. n)
end

-- sends `msg` back to the client; a block the cache no longer has ends the transfer with an
-- error, so the client asks again (and the server answers)
local function answer(peer, file, msg)
  if not msg then
    serving:delete(peer)
    files:delete(file)
    msg = string.pack(">I2I2z", ERROR, 0, "cache lost a block, ask again")
  end
  local ok, why = lp.reply(msg)
  if not ok then
    stats:add("unsent", 1)
    lp.log("tftp-cache: answer to " .. peer .. " not sent: " .. why)
  end
end

function process_packet(pkt)
  local u, ip = pkt.udp, pkt.ip or pkt.ip6
  if not (u and ip) then return lp.CONTINUE end
  local p = u.payload -- a view: nothing copied until asked
  if #p < 4 then return lp.CONTINUE end
  local op, n = string.unpack(">I2I2", p:sub(1, 4))
  if u.dport == 69 then
    local peer = ip.saddr .. ":" .. u.sport
    if op == RRQ then
      local file = p:sub(3, 66):match("^([^%z]+)%z")
      if not file or #file > 60 then return lp.CONTINUE end
      if files:get(file) then
        serving:set(peer, file)
        stats:add("hits", 1)
        answer(peer, file, data(file, 1))
        return lp.DROP
      end
      -- a miss: the server answers, and the cache learns
      learning:set(peer, file)
      serving:delete(peer)
      stats:add("misses", 1)
    elseif op == ACK then
      local file = serving:get(peer)
      if not file then return lp.CONTINUE end
      local last = files:get(file)
      if last and n < last then
        stats:add("blocks", 1)
        answer(peer, file, data(file, n + 1))
      else
        serving:delete(peer) -- the last block acknowledged
      end
      return lp.DROP
    end
  elseif op == DATA then
    local client = ip.daddr .. ":" .. u.dport
    local file = learning:get(client)
    if file then
      blocks:set(file .. "#" .. n, tostring(p))
      if #p - 4 < BLOCK then
        files:set(file, n)
        learning:delete(client)
      end
    end
  end
  return lp.CONTINUE
end
