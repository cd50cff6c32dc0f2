-- payload.lua: drop HTTP requests for /index.html (a plain search in the TCP payload).
function process_packet(pkt)
  local tcp = pkt.tcp
  if tcp and tcp.dport == 80 then
    local p = tcp.payload
    if #p > 0 and p:find("GET /index.html", 1, true) then
      return lp.DROP
    end
  end
  return lp.ACCEPT
end
