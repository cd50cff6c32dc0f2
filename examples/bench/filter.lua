-- filter.lua: an address/port filter: drop TCP from 10.0.0.0/29 to 22 or 8080.
local admin = lp.cidr("10.0.0.0/29")
local ports = { [22] = true, [8080] = true }
function process_packet(pkt)
  local ip, tcp = pkt.ip, pkt.tcp
  if ip and tcp and ports[tcp.dport] and admin:contains(ip.saddr) then
    return lp.DROP
  end
  return lp.ACCEPT
end
