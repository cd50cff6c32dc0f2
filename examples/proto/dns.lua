-- dns.lua: the DNS message header (RFC 1035 4.1.1) as a Lua-defined protocol, read side.
--
--    0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
--   |                      id                       |
--   |qr|  opcode   |aa|tc|rd|ra|   z    |   rcode   |
--   |   qdcount   |   ancount   |   nscount   |   arcount   |  (16 bits each)
lp.proto.define{
  name = "dns",
  fields = {
    {name = "id", offset = 0, bits = 16},
    {name = "qr", offset = 16, bits = 1},
    {name = "opcode", offset = 17, bits = 4},
    {name = "aa", offset = 21, bits = 1},
    {name = "tc", offset = 22, bits = 1},
    {name = "rd", offset = 23, bits = 1},
    {name = "ra", offset = 24, bits = 1},
    {name = "z", offset = 25, bits = 3},
    {name = "rcode", offset = 28, bits = 4},
    {name = "qdcount", offset = 32, bits = 16},
    {name = "ancount", offset = 48, bits = 16},
    {name = "nscount", offset = 64, bits = 16},
    {name = "arcount", offset = 80, bits = 16},
  },
  payload = 96, -- the question section follows the 12-byte header
  detect = function(pkt)
    local u = pkt.udp
    return u ~= nil and (u.dport == 53 or u.sport == 53)
  end,
}

-- log failed answers (rcode ~= 0), accept everything
function process_packet(pkt)
  if lp.proto.detect(pkt) == "dns" then
    local h = pkt.udp.payload:as("dns")
    if h.qr == 1 and h.rcode and h.rcode ~= 0 then
      lp.log("dns: id", h.id, "rcode", h.rcode)
    end
  end
  return lp.ACCEPT
end
