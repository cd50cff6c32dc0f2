-- blocklist.lua: a 1,000-entry source blocklist (a set keyed by address string).
local blocked = {}
for i = 0, 999 do
  blocked[string.format("10.%d.%d.%d", i // 256 % 256, i % 256, (i * 7) % 250 + 1)] = true
end
blocked["10.0.0.3"] = true
blocked["10.0.0.9"] = true
function process_packet(pkt)
  local ip = pkt.ip
  if ip and blocked[ip.saddr] then
    return lp.DROP
  end
  local ip6 = pkt.ip6
  if ip6 and blocked[ip6.saddr] then
    return lp.DROP
  end
  return lp.ACCEPT
end
