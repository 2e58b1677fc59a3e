/**
 * Plain data types of the netlink API: what links, addresses and routes look
 * like, and the specs that create or change them.
 *
 * @module
 */

/** macvlan/macvtap modes, spelled as in iproute2 and in the CNI config. */
export type MacvlanMode = "private" | "vepa" | "bridge" | "passthru" | "source";

/** Address family of an address or route. */
export type Family = 4 | 6;

/** A link reference: ifindex or name. */
export type LinkRef = number | string;

/** A network interface as the kernel reports it (`ip -d link show`). */
export interface Link {
  /** ifindex in the namespace it was read from. */
  index: number;
  /** `IFLA_IFNAME`, at most 15 bytes. */
  name: string;
  /** `IFLA_INFO_KIND` (`"macvtap"`, `"veth"`, `"bridge"` …); absent for physical NICs and lo. */
  kind?: string;
  /** `IFLA_INFO_SLAVE_KIND`, e.g. `"bridge"` or `"bond"` when enslaved. */
  slaveKind?: string;
  /** MAC address, lower-case `aa:bb:cc:dd:ee:ff` (absent for links without one). */
  mac?: string;
  /** `IFLA_MTU` (0 when the kernel did not report one). */
  mtu: number;
  /** `ifi_flags` (IFF_*). */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** IFF_PROMISC set on the link itself. */
  promisc: boolean;
  /** `IFLA_OPERSTATE` as iproute2 spells it: "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN" … */
  operState: string;
  /** `IFLA_CARRIER`. */
  carrier?: boolean;
  /** `IFLA_LINK`: ifindex of the lower device (parent), possibly in another namespace. */
  parentIndex?: number;
  /** `IFLA_LINK_NETNSID`: set when the parent lives in another namespace. */
  linkNetnsId?: number;
  /** `IFLA_MASTER`: ifindex of the bridge or bond this link is enslaved to. */
  masterIndex?: number;
  /** `IFLA_TXQLEN`. */
  txQueueLen?: number;
  /** macvlan/macvtap mode. */
  mode?: MacvlanMode;
  /** `ifi_type` (ARPHRD_*): 1 ether, 772 loopback … */
  type: number;
  /** `IFLA_IFALIAS` (`ip link set X alias TEXT`), when set. */
  alias?: string;
}

/** What to create (`ip link add …`). */
export type LinkSpec =
  & {
    /** Interface name (≤ 15 bytes; longer is ERANGE from the kernel). */
    name: string;
    /** MTU; for macvtap/macvlan at most the parent's (EINVAL otherwise). Default: the kernel's. */
    mtu?: number;
    /** MAC address `aa:bb:cc:dd:ee:ff`; default: random. */
    mac?: string;
    /** Bring the link up in the same request. */
    up?: boolean;
    /** Ask for this ifindex (EBUSY when taken). */
    index?: number;
    /** Create the link directly in this namespace (`IFLA_NET_NS_FD`). */
    netns?: { fd: number };
    /** `IFLA_TXQLEN` (`ip link add … txqueuelen N`). */
    txQueueLen?: number;
  }
  & (
    | {
      /** A macvtap (with a `/dev/tapN` character device) or a macvlan. */
      kind: "macvtap" | "macvlan";
      /** Lower device, in the handle's namespace. */
      parent: LinkRef;
      /** Default `"bridge"`. */
      mode?: MacvlanMode;
    }
    | {
      /** A veth pair; `name` is this end. */
      kind: "veth";
      /** The other end; created in `peer.netns` when given. */
      peer: { name: string; netns?: { fd: number }; mac?: string };
    }
    | {
      /** A Linux bridge. */
      kind: "bridge";
    }
    | {
      /** A dummy link (needs CONFIG_DUMMY). */
      kind: "dummy";
    }
  );

/** What to change (`ip link set …`). Fields are applied in one RTM_NEWLINK. */
export interface LinkChange {
  /** Set or clear IFF_UP (`ip link set X up|down`). */
  up?: boolean;
  /** `ip link set X mtu N`. */
  mtu?: number;
  /** `ip link set X address MAC`. */
  mac?: string;
  /** Rename (`ip link set X name Y`); the kernel renames before it changes flags. */
  name?: string;
  /** Set or clear IFF_PROMISC (`ip link set X promisc on|off`). */
  promisc?: boolean;
  /**
   * `ip link set X alias TEXT` (`IFLA_IFALIAS`, at most 255 bytes); `""`
   * clears it. The kernel ignores it when a link is created: set it after.
   */
  alias?: string;
  /** Move the link into this namespace (`IFLA_NET_NS_FD`). */
  netns?: { fd: number };
  /**
   * With `netns`: the ifindex to take there (`IFLA_NEW_IFINDEX`; EBUSY when
   * taken). Without `netns` it is a TypeError: the kernel would ignore it.
   */
  newIndex?: number;
}

/** An interface address (`ip addr`). */
export interface Address {
  /** ifindex. */
  index: number;
  /** 4 or 6. */
  family: Family;
  /** Host address with prefix, e.g. `10.1.2.3/24`, `fd00::5/64`. */
  cidr: string;
  /** `IFA_F_*` flags (including `IFA_FLAGS` bits beyond 8). */
  flags: number;
  /** `RT_SCOPE_*`: 0 global, 253 link, 254 host. */
  scope: number;
  /** `IFA_LABEL` (IPv4), e.g. `eth0:1`. */
  label?: string;
}

/** A route (`ip route`). */
export interface Route {
  /** 4 or 6. */
  family: Family;
  /** Destination CIDR; `0.0.0.0/0` / `::/0` for default. */
  dst: string;
  /** Gateway (`RTA_GATEWAY`, `via`). */
  gw?: string;
  /** Output ifindex (`RTA_OIF`). */
  oif?: number;
  /** `RTA_PRIORITY` (metric). */
  metric?: number;
  /** Routing table, default main (254). */
  table?: number;
  /** `RT_SCOPE_*`: 0 universe, 253 link, 254 host. */
  scope?: number;
  /** `RTPROT_*`: 2 kernel, 3 boot, 4 static … */
  protocol?: number;
  /** `RTN_*`: 1 unicast, 2 local … */
  type?: number;
  /** Preferred source address (`RTA_PREFSRC`). */
  src?: string;
  /** Route MTU (`RTAX_MTU`). */
  mtu?: number;
  /** `RTAX_ADVMSS`. */
  advmss?: number;
  /**
   * Next hops of a multipath route (`RTA_MULTIPATH`, `nexthop via … dev …`),
   * as read from the kernel; not used when adding.
   */
  nexthops?: NextHop[];
}

/** One next hop of a multipath route. */
export interface NextHop {
  /** Gateway (`RTA_GATEWAY`, or `RTA_VIA` of another family). */
  gw?: string;
  /** Output ifindex. */
  oif?: number;
}

/** A link notification from RTNLGRP_LINK. */
export interface LinkEvent {
  /** `RTM_NEWLINK` (created or changed) or `RTM_DELLINK`. */
  type: "new" | "del";
  /** The link as the notification describes it. */
  link: Link;
}
