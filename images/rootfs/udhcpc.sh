#!/bin/sh
# busybox udhcpc's event script (its default path, /usr/share/udhcpc/default.script):
# configures the interface, the default route and /etc/resolv.conf from the lease.
case "$1" in
  deconfig)
    ifconfig "$interface" 0.0.0.0 ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
    for r in $router; do route add default gw "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "udhcpc: $interface $ip/${subnet:-255.255.255.0} router ${router:-none}" ;;
esac
exit 0
