-- drop-ssh.lua: drop TCP to port 22, accept the rest.
function process_packet(pkt)
  local tcp = pkt.tcp
  if tcp and tcp.dport == 22 then
    return lp.DROP
  end
  return lp.ACCEPT
end
