-- counter.lua: per-source packet counter; a source is dropped after 3 packets.
local seen = {}
function process_packet(pkt)
  local ip = pkt.ip or pkt.ip6
  if not ip then return lp.ACCEPT end
  local src = ip.saddr
  local n = (seen[src] or 0) + 1
  seen[src] = n
  if n > 3 then
    return lp.DROP
  end
  return lp.ACCEPT
end
