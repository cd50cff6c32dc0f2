-- accept.lua: the per-call floor.
function process_packet(pkt)
  return lp.ACCEPT
end
