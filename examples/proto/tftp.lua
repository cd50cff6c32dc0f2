-- tftp.lua: TFTP (RFC 1350) as a Lua-defined protocol (fields read and write by name).
--
--   opcode  1 RRQ, 2 WRQ: filename\0 mode\0        (the payload, after the opcode)
--           3 DATA: block, then up to 512 bytes    (the payload, after the block)
--           4 ACK: block
--           5 ERROR: errcode, errmsg\0             (the payload, after the code)
local OP_RRQ, OP_WRQ, OP_DATA, OP_ACK, OP_ERROR = 1, 2, 3, 4, 5

local function has_block(v) local op = v.opcode return op == OP_DATA or op == OP_ACK end

lp.proto.define{
  name = "tftp",
  fields = {
    {name = "opcode", offset = 0, bits = 16},
    -- present for DATA and ACK only: nil for the others
    {name = "block", offset = function(v) if has_block(v) then return 16 end end, bits = 16},
    {name = "errcode", offset = function(v) if v.opcode == OP_ERROR then return 16 end end, bits = 16},
  },
  payload = function(v)
    local op = v.opcode
    if op == OP_RRQ or op == OP_WRQ then return 16 end
    if op then return 32 end
  end,
  detect = function(pkt) return pkt.udp ~= nil and pkt.udp.dport == 69 end,
}

-- filename and mode of a request (RRQ/WRQ) view, or nil
function tftp_request(v)
  if v.opcode ~= OP_RRQ and v.opcode ~= OP_WRQ then return nil end
  return tostring(v.payload):match("^([^%z]+)%z([^%z]+)%z")
end

-- drop write requests and reads of anything under /etc; accept the rest
function process_packet(pkt)
  if lp.proto.detect(pkt) ~= "tftp" then return lp.ACCEPT end
  local v = pkt.udp.payload:as("tftp")
  if v.opcode == OP_WRQ then return lp.DROP end
  local file = tftp_request(v)
  if file and file:find("/etc", 1, true) == 1 then return lp.DROP end
  return lp.ACCEPT
end
