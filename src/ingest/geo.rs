//! Client IP → country (SPEC 3.2, the `countries` report of 2.6), ISO 3166-1 alpha-2.
//!
//! The lookup is the `maxminddb` crate over a database in MaxMind's format. By default that is
//! the embedded `geo/iptoasn-country.mmdb`: IPtoASN's data as packaged by ip-location-db, under
//! the PDDL (text in `geo/LICENSE`; where it comes from and how to refresh it in
//! `geo/README.md`). The reader borrows the embedded bytes, nothing is copied at start-up.
//! `--geoip-db PATH` replaces it with any MaxMind DB file (GeoLite2-Country, GeoIP2-City, an
//! ip-location-db file, …), read into memory once and checked by [`GeoIp::open`].
//!
//! Records come in two layouts and both are read: MaxMind's `{"country": {"iso_code": "DE"}}`
//! (with `registered_country` as the fallback for the networks MaxMind leaves without a
//! `country`) and ip-location-db's `{"country_code": "DE"}`.
//!
//! Addresses that belong to no country — private, loopback, link-local, CGNAT, documentation,
//! benchmarking, multicast, reserved, unspecified — answer `None` without a lookup. An
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a dual-stack socket) and a NAT64 address of the
//! well-known prefix (`64:ff9b::a.b.c.d`) are looked up as their IPv4 address.
//!
//! A lookup costs well under a microsecond in release builds (a walk of at most 128 tree
//! nodes and the decoding of one small map, no allocation but the returned code) and never
//! panics: a malformed record is no country.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;

/// The embedded database (see `geo/README.md`).
static EMBEDDED: &[u8] = include_bytes!("geo/iptoasn-country.mmdb");

/// A MaxMind-format IP-to-country database, embedded or loaded from a file. Cheap to share:
/// lookups take `&self` and the type is `Send + Sync`.
#[derive(Debug)]
pub struct GeoIp {
    reader: Reader<Cow<'static, [u8]>>,
}

/// The fields of a record that can name the country; all others are skipped undecoded.
#[derive(Deserialize)]
struct Record<'a> {
    /// ip-location-db's layout.
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    /// MaxMind's layout: where the address is used.
    #[serde(borrow, default)]
    country: Option<Place<'a>>,
    /// MaxMind's layout: where the network is registered.
    #[serde(borrow, default)]
    registered_country: Option<Place<'a>>,
}

#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

impl GeoIp {
    /// The embedded database.
    pub fn embedded() -> GeoIp {
        let reader = Reader::from_source(Cow::Borrowed(EMBEDDED))
            .expect("the embedded database is a valid MaxMind DB (checked by the tests)");
        GeoIp { reader }
    }

    /// A MaxMind DB file (`--geoip-db`), read into memory and checked: its metadata must be
    /// valid and a lookup must find a country record or nothing. The error names the path and
    /// says what is wrong with it.
    pub fn open(path: impl AsRef<Path>) -> Result<GeoIp, String> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the GeoIP database {}: {e}", path.display()))?;
        GeoIp::from_bytes(Cow::Owned(bytes))
            .map_err(|e| format!("{} is not a usable MaxMind DB file: {e}", path.display()))
    }

    fn from_bytes(bytes: Cow<'static, [u8]>) -> Result<GeoIp, String> {
        if bytes.is_empty() {
            return Err("the file is empty".into());
        }
        // `Reader::verify` would walk every record, but it also rejects files that real
        // producers make (ip-location-db leaves `description` empty), so it is not used: a
        // lookup in a damaged file is an error or no country, never a panic (tested below).
        let reader = Reader::from_source(bytes).map_err(|e| e.to_string())?;
        let probe = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));
        let found = reader.lookup(probe).map_err(|e| e.to_string())?;
        found
            .decode::<Record>()
            .map_err(|e| format!("its records are not country records: {e}"))?;
        Ok(GeoIp { reader })
    }

    /// The country of `ip`, two uppercase ASCII letters; `None` for an address of no country
    /// (see the module documentation), an address the database does not know, or a record
    /// without a usable code.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let ip = public_address(ip)?;
        let found = self.reader.lookup(ip).ok()?;
        let record = found.decode::<Record>().ok()??;
        let code = (record.country.and_then(|p| p.iso_code))
            .or(record.country_code)
            .or_else(|| record.registered_country.and_then(|p| p.iso_code))?;
        normalize_country(code)
    }

    /// What the database says it is, for the start-up log: its type and build time.
    pub fn describe(&self) -> String {
        let meta = self.reader.metadata();
        let built = i64::try_from(meta.build_epoch)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map_or_else(|| "an unknown time".to_string(), |t| t.to_string());
        format!(
            "{} (IPv{}), built {built}",
            meta.database_type, meta.ip_version
        )
    }
}

/// A country code as stored: two ASCII letters, uppercased. `None` for anything else and for
/// the codes that name no country (`ZZ` and `XX`, "unknown"; `AP` and `EU`, MaxMind's old
/// region codes). Also for importers that set the country directly (SPEC 3.5).
pub fn normalize_country(code: &str) -> Option<String> {
    let code = code.trim();
    let [a, b] = code.as_bytes() else {
        return None;
    };
    if !a.is_ascii_alphabetic() || !b.is_ascii_alphabetic() {
        return None;
    }
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    if matches!(&code, b"ZZ" | b"XX" | b"AP" | b"EU") {
        return None;
    }
    Some(String::from_utf8_lossy(&code).into_owned())
}

/// The address to look up for `ip`, or `None` when it is not a public unicast address.
fn public_address(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => public_v4(v4).map(IpAddr::V4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped().or_else(|| nat64(v6)) {
                return public_v4(v4).map(IpAddr::V4);
            }
            public_v6(v6).map(IpAddr::V6)
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback() // 127/8
        || ip.is_link_local() // 169.254/16
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
        || (a == 100 && b & 0xc0 == 64) // shared address space (CGNAT), 100.64/10
        || (a == 198 && b & 0xfe == 18) // benchmarking, 198.18/15
        || (a == 192 && b == 0 && c == 0); // IETF protocol assignments, 192.0.0/24
    (!special).then_some(ip)
}

fn public_v6(ip: Ipv6Addr) -> Option<Ipv6Addr> {
    let s = ip.segments();
    let special = s[..6] == [0; 6] // ::, ::1 and the deprecated IPv4-compatible ::/96
        || ip.is_multicast() // ff00::/8
        || ip.is_unique_local() // fc00::/7
        || ip.is_unicast_link_local() // fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, 2001:db8::/32
        || (s[0] == 0x3fff && s[1] & 0xf000 == 0) // documentation, 3fff::/20
        || s[..4] == [0x0100, 0, 0, 0]; // discard-only, 100::/64
    (!special).then_some(ip)
}

/// The IPv4 address inside a NAT64 address of the well-known prefix 64:ff9b::/96.
fn nat64(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    (o[..12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0])
        .then(|| Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn embedded() -> &'static GeoIp {
        static DB: std::sync::LazyLock<GeoIp> = std::sync::LazyLock::new(GeoIp::embedded);
        &DB
    }

    #[test]
    fn embedded_database_opens() {
        let db = embedded();
        let meta = db.reader.metadata();
        assert_eq!(meta.ip_version, 6);
        assert!(db.describe().contains("IPv6"), "{}", db.describe());
    }

    #[test]
    fn public_addresses_resolve_to_their_country() {
        // Chosen where the registration, the routing origin and the use agree, and checked
        // against the embedded data; a refresh that moves one of these is worth a look.
        for (addr, want) in [
            ("8.8.8.8", "US"),              // Google Public DNS
            ("9.9.9.9", "US"),              // Quad9
            ("80.156.0.1", "DE"),           // Deutsche Telekom (AS3320)
            ("217.0.0.1", "DE"),            // Deutsche Telekom
            ("193.99.144.80", "DE"),        // Heise Medien
            ("130.149.7.201", "DE"),        // TU Berlin (DFN)
            ("126.0.0.1", "JP"),            // SoftBank
            ("133.242.0.1", "JP"),          // Sakura Internet
            ("210.130.0.1", "JP"),          // IIJ
            ("81.2.69.142", "GB"),          // Andrews & Arnold
            ("2001:4860:4860::8888", "US"), // Google Public DNS
            ("2003::1", "DE"),              // Deutsche Telekom
            ("2001:240::1", "JP"),          // IIJ
            ("2400:4050::1", "JP"),         // NTT
            ("::ffff:8.8.8.8", "US"),       // IPv4-mapped
            ("::ffff:80.156.0.1", "DE"),    // IPv4-mapped
            ("64:ff9b::808:808", "US"),     // NAT64 of 8.8.8.8
        ] {
            assert_eq!(
                embedded().country(ip(addr)).as_deref(),
                Some(want),
                "{addr}"
            );
        }
    }

    #[test]
    fn addresses_of_no_country_are_none() {
        for addr in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.5",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::8.8.8.8",
            "::ffff:10.0.0.1",
            "::ffff:203.0.113.5",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "3fff:fff:ffff::1",
            "100::1",
        ] {
            assert_eq!(embedded().country(ip(addr)), None, "{addr}");
        }
        // Databases do have records for some of these (geo-whois-asn-country maps
        // 203.0.113.0/24 to AU): the filter answers first, as the test database below shows.
        assert!(public_address(ip("203.0.113.5")).is_none());
        assert_eq!(public_address(ip("8.8.8.8")), Some(ip("8.8.8.8")));
        assert_eq!(public_address(ip("::ffff:1.2.3.4")), Some(ip("1.2.3.4")));
        assert_eq!(public_address(ip("2a00:1450::1")), Some(ip("2a00:1450::1")));
        // Neighbours of the special ranges are public.
        for addr in [
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.1",
            "3fff:1000::1",
            "2001:db9::1",
        ] {
            assert!(public_address(ip(addr)).is_some(), "{addr}");
        }
    }

    #[test]
    fn codes_are_normalised() {
        assert_eq!(normalize_country("de").as_deref(), Some("DE"));
        assert_eq!(normalize_country("Jp").as_deref(), Some("JP"));
        assert_eq!(normalize_country(" US ").as_deref(), Some("US"));
        assert_eq!(normalize_country("XK").as_deref(), Some("XK"));
        for bad in [
            "", "D", "DEU", "A1", "--", "ZZ", "zz", "XX", "AP", "EU", "ÄB", "é",
        ] {
            assert_eq!(normalize_country(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lookup_speed() {
        let db = embedded();
        let mut x: u32 = 0x9E37_79B9;
        let addrs: Vec<IpAddr> = (0..100_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 4 == 0 {
                    // 2a00::/16 (RIPE NCC), well filled.
                    IpAddr::V6(Ipv6Addr::from(0x2a00_u128 << 112 | u128::from(x) << 80))
                } else {
                    IpAddr::V4(Ipv4Addr::from(x))
                }
            })
            .collect();
        let start = Instant::now();
        let found = addrs.iter().filter(|a| db.country(**a).is_some()).count();
        let per = start.elapsed() / addrs.len() as u32;
        println!(
            "geo: {} lookups, {found} with a country, {per:?} per lookup",
            addrs.len()
        );
        assert!(found > addrs.len() / 4, "{found}");
    }

    /// A minimal MaxMind DB writer for the tests: an IPv6 search tree with 24-bit records,
    /// records that are maps of maps and strings. Format: the MaxMind DB File Format
    /// Specification 2.0.
    #[derive(Default)]
    struct TestDb {
        nodes: Vec<[Rec; 2]>,
        data: Vec<u8>,
    }

    #[derive(Clone, Copy)]
    enum Rec {
        Empty,
        Node(usize),
        Data(usize),
    }

    /// A value of the MaxMind DB data section.
    enum V<'a> {
        Str(&'a str),
        U32(u32),
        Map(Vec<(&'a str, V<'a>)>),
    }

    fn encode(out: &mut Vec<u8>, v: &V) {
        match v {
            V::Str(s) => {
                assert!(s.len() < 29);
                out.push((2 << 5) | s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
            V::U32(n) => {
                out.push((6 << 5) | 4);
                out.extend_from_slice(&n.to_be_bytes());
            }
            V::Map(pairs) => {
                assert!(pairs.len() < 29);
                out.push((7 << 5) | pairs.len() as u8);
                for (k, v) in pairs {
                    encode(out, &V::Str(k));
                    encode(out, v);
                }
            }
        }
    }

    impl TestDb {
        fn new() -> TestDb {
            TestDb {
                nodes: vec![[Rec::Empty; 2]],
                data: Vec::new(),
            }
        }

        /// `net/len` (an IPv4 network is placed at ::a.b.c.d/96+len) → `record`.
        fn insert(&mut self, net: &str, len: u32, record: V) {
            let (bits, len) = match ip(net) {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), len + 96),
                IpAddr::V6(v6) => (u128::from(v6), len),
            };
            let offset = self.data.len();
            encode(&mut self.data, &record);
            let mut node = 0;
            for depth in 0..len {
                let bit = (bits >> (127 - depth) & 1) as usize;
                if depth == len - 1 {
                    self.nodes[node][bit] = Rec::Data(offset);
                } else {
                    node = match self.nodes[node][bit] {
                        Rec::Node(next) => next,
                        Rec::Empty => {
                            self.nodes.push([Rec::Empty; 2]);
                            let next = self.nodes.len() - 1;
                            self.nodes[node][bit] = Rec::Node(next);
                            next
                        }
                        Rec::Data(_) => panic!("overlapping networks"),
                    };
                }
            }
        }

        fn build(&self) -> Vec<u8> {
            let count = self.nodes.len();
            let mut out = Vec::new();
            for node in &self.nodes {
                for rec in node {
                    let value = match *rec {
                        Rec::Empty => count,
                        Rec::Node(i) => i,
                        Rec::Data(offset) => count + 16 + offset,
                    };
                    out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
                }
            }
            out.extend_from_slice(&[0; 16]);
            out.extend_from_slice(&self.data);
            out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
            let mut meta = Vec::new();
            meta.push((7 << 5) | 9); // a map of nine pairs
            let u16 = |meta: &mut Vec<u8>, k: &str, n: u16| {
                encode(meta, &V::Str(k));
                meta.extend_from_slice(&[(5 << 5) | 2, (n >> 8) as u8, n as u8]);
            };
            u16(&mut meta, "binary_format_major_version", 2);
            u16(&mut meta, "binary_format_minor_version", 0);
            u16(&mut meta, "ip_version", 6);
            u16(&mut meta, "record_size", 24);
            encode(&mut meta, &V::Str("node_count"));
            encode(&mut meta, &V::U32(count as u32));
            encode(&mut meta, &V::Str("build_epoch"));
            meta.extend_from_slice(&[8, 2]); // uint64 (extended type 9), eight bytes
            meta.extend_from_slice(&1_750_000_000_u64.to_be_bytes());
            encode(&mut meta, &V::Str("database_type"));
            encode(&mut meta, &V::Str("Jetrack-Test-Country"));
            encode(&mut meta, &V::Str("description"));
            encode(&mut meta, &V::Map(vec![("en", V::Str("test"))]));
            encode(&mut meta, &V::Str("languages"));
            meta.extend_from_slice(&[1, 4]); // an array (extended type 11) of one
            encode(&mut meta, &V::Str("en"));
            out.extend_from_slice(&meta);
            out
        }
    }

    fn country_map(code: &str) -> V<'_> {
        V::Map(vec![
            ("geoname_id", V::U32(2921044)),
            ("iso_code", V::Str(code)),
            (
                "names",
                V::Map(vec![
                    ("en", V::Str("Somewhere")),
                    ("de", V::Str("Irgendwo")),
                ]),
            ),
        ])
    }

    /// Both layouts, a few odd records, and addresses that must not be looked up.
    fn test_db() -> Vec<u8> {
        let mut db = TestDb::new();
        // MaxMind's layout (GeoLite2-Country / GeoIP2), with the usual neighbours.
        db.insert(
            "8.8.8.0",
            24,
            V::Map(vec![
                ("continent", V::Map(vec![("code", V::Str("NA"))])),
                ("country", country_map("US")),
                ("registered_country", country_map("US")),
            ]),
        );
        db.insert(
            "2a00:1450::",
            32,
            V::Map(vec![("country", country_map("ie"))]),
        );
        // Only the registration country is known (an anycast or satellite network).
        db.insert(
            "81.2.69.0",
            24,
            V::Map(vec![("registered_country", country_map("GB"))]),
        );
        // Where used and where registered differ: where used wins.
        db.insert(
            "5.6.7.0",
            24,
            V::Map(vec![
                ("registered_country", country_map("NL")),
                ("country", country_map("BE")),
            ]),
        );
        // ip-location-db's layout, in the same file.
        db.insert("1.1.1.0", 24, V::Map(vec![("country_code", V::Str("AU"))]));
        db.insert("2003::", 19, V::Map(vec![("country_code", V::Str("de"))]));
        // Records that name no country.
        db.insert("9.9.9.0", 24, V::Map(vec![("country", country_map("ZZ"))]));
        db.insert(
            "4.4.4.0",
            24,
            V::Map(vec![("city", V::Map(vec![("geoname_id", V::U32(1))]))]),
        );
        db.insert("4.4.5.0", 24, V::Map(vec![("country_code", V::U32(49))]));
        db.insert("4.4.6.0", 24, V::Map(vec![("country", V::Str("DE"))]));
        db.insert("4.4.7.0", 24, V::Str("DE"));
        // Records for addresses that are never looked up.
        db.insert("10.0.0.0", 8, V::Map(vec![("country_code", V::Str("FR"))]));
        db.insert(
            "203.0.113.0",
            24,
            V::Map(vec![("country_code", V::Str("FR"))]),
        );
        db.insert(
            "2001:db8::",
            32,
            V::Map(vec![("country_code", V::Str("FR"))]),
        );
        db.build()
    }

    fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn both_record_layouts_are_read() {
        let file = write_temp(&test_db());
        let db = GeoIp::open(file.path()).unwrap();
        assert!(
            db.describe()
                .starts_with("Jetrack-Test-Country (IPv6), built 2025-06-15"),
            "{}",
            db.describe()
        );
        for (addr, want) in [
            ("8.8.8.8", Some("US")),
            ("8.8.8.255", Some("US")),
            ("::ffff:8.8.8.8", Some("US")),
            ("64:ff9b::808:808", Some("US")),
            ("2a00:1450:4001::1", Some("IE")),
            ("81.2.69.142", Some("GB")),
            ("5.6.7.8", Some("BE")),
            ("1.1.1.1", Some("AU")),
            ("2003:e0::1", Some("DE")),
            ("8.8.9.1", None),
            ("2a01::1", None),
            ("9.9.9.9", None),
            ("4.4.4.4", None),
            ("4.4.5.5", None),
            ("4.4.6.6", None),
            ("4.4.7.7", None),
            ("10.1.2.3", None),
            ("203.0.113.9", None),
            ("2001:db8::1", None),
        ] {
            assert_eq!(db.country(ip(addr)).as_deref(), want, "{addr}");
        }
    }

    #[test]
    fn open_names_the_path_and_the_problem() {
        let missing = std::env::temp_dir().join("jetrack-no-such-dir/GeoLite2-Country.mmdb");
        let err = GeoIp::open(&missing).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(err.contains("cannot read"), "{err}");

        for bytes in [
            &b""[..],
            b"this is not a MaxMind database\n",
            b"\xab\xcd\xefMaxMind.com",
            &test_db()[..100],
        ] {
            let file = write_temp(bytes);
            let err = GeoIp::open(file.path()).unwrap_err();
            assert!(err.contains(&file.path().display().to_string()), "{err}");
            assert!(err.contains("is not a usable MaxMind DB file"), "{err}");
        }

        let dir = tempfile::tempdir().unwrap();
        let err = GeoIp::open(dir.path()).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");

        // A real file opens, and the embedded one does too through the same checks.
        assert!(GeoIp::from_bytes(Cow::Borrowed(EMBEDDED)).is_ok());
    }

    #[test]
    fn corrupt_databases_never_panic() {
        let good = test_db();
        let addrs = [
            "8.8.8.8",
            "1.1.1.1",
            "2a00:1450::1",
            "2003::1",
            "81.2.69.1",
            "4.4.5.5",
        ];
        // Every byte flipped in turn, and every truncation: opening may fail, a lookup in
        // whatever opens may find nothing, but nothing panics. The checks of `open` are
        // skipped here so that the lookups themselves meet the damage.
        let mut opened = 0;
        for i in 0..good.len() {
            for bytes in [
                {
                    let mut b = good.clone();
                    b[i] ^= 0xff;
                    b
                },
                good[..i].to_vec(),
            ] {
                let _ = GeoIp::from_bytes(Cow::Owned(bytes.clone()));
                if let Ok(reader) = Reader::from_source(Cow::Owned(bytes)) {
                    opened += 1;
                    let db = GeoIp { reader };
                    for addr in addrs {
                        let _ = db.country(ip(addr));
                    }
                }
            }
        }
        assert!(opened > good.len() / 2, "{opened}");
    }
}
