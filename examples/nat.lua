-- nat.lua: stateless 1:1 NAT for IPv4 (TCP, UDP, ICMP echo), the kind a router does for hosts
-- that own a public address without knowing it.
--
--   lpctl script load nat.lua --name nat
--   nft add table ip nat
--   nft add chain ip nat pre '{ type filter hook prerouting priority raw; }'
--   lpctl rule add ip nat pre lua script nat function nat
--
-- Prerouting, so the routing decision sees the rewritten destination; priority raw, so
-- conntrack (if any) sees the addresses the packets leave with. Being stateless, it then sees
-- a flow as two: client -> private one way, public -> client the other; a `ct state` firewall
-- on this router would misjudge such flows (native NAT keeps them one). Limit the rule to the
-- router's interfaces (`iifname ...` before `lua`) if other traffic reaches this hook.

-- Public address -> private host. The only configuration.
local PUBLIC = {
  ["10.0.3.2"] = "10.0.2.2",
}

-- The way back, computed once. Keys are the addresses' text form as pkt.ip reads them, so a
-- packet costs a table lookup per address: no parsing, and the strings read from the packet
-- are short strings Lua interns (an address already in this table allocates nothing).
local PRIVATE = {}
for pub, priv in pairs(PUBLIC) do PRIVATE[priv] = pub end

-- Protocols whose checksums survive an address change: TCP and UDP through the setters'
-- pseudo-header update, ICMP because its checksum covers no address. Others (SCTP, DCCP,
-- UDP-Lite...) pass untouched rather than broken. ICMP errors keep the private address in the
-- header they quote: stateless NAT does not translate them.
local TRANSLATED = { [1] = true, [6] = true, [17] = true }

local CONTINUE = lp.CONTINUE

function nat(pkt)
  local ip = pkt.ip
  if not ip then return CONTINUE end
  -- Every field read is a call into the library, so packets that are not ours pay for the two
  -- addresses only. Both are looked up: a private host reaching another one through its
  -- public address (hairpin) needs both rewrites.
  local priv, pub = PUBLIC[ip.daddr], PRIVATE[ip.saddr]
  if (priv or pub) and TRANSLATED[ip.protocol] then
    if priv then ip.daddr = priv end
    if pub then ip.saddr = pub end
  end
  return CONTINUE
end
