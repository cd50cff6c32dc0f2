-- demo.lua: drop UDP to port 5001 and anything from a denied prefix; accept the rest.
-- redirect (bound by its own rule on prerouting): UDP to port 5002 goes to 5000 instead; the
-- setter keeps the UDP checksum valid.
local denied = lp.cidr("10.99.0.128/25")
local seen = 0

function process_packet(pkt)
  seen = seen + 1
  local ip, udp = pkt.ip, pkt.udp
  if ip and denied:contains(ip.saddr) then
    return lp.DROP
  end
  if udp and udp.dport == 5001 then
    if seen % 10 == 0 then
      lp.log("dropped", seen, "packets so far; last from", ip and ip.saddr)
    end
    return lp.DROP
  end
  return lp.ACCEPT
end

function redirect(pkt)
  local udp = pkt.udp
  if udp and udp.dport == 5002 then udp.dport = 5000 end
  return lp.CONTINUE
end
