//! Every dimension of the statistics, defined once (docs/definitions.md, "Dimensions").
//!
//! - [`Attr`]: what a session keeps of its first pageview. Ingestion sets it, `visits` stores
//!   it in the column [`Attr::column`], the export writes it, and the statistics read it.
//! - [`SessionAttr`]: an attribute of a session as the statistics see it: its entry and exit
//!   pages, then every [`Attr`]; the order of a session's attributes in memory and in blocks.
//! - [`Dimension`]: a filter parameter (`utmSource=…`), and how it selects sessions.
//! - [`Report`]: a breakdown route (`stats/utm-sources`), and what it groups.
//!
//! The route table, the OpenAPI document and `docs/api.md` are built from or checked against
//! these enums; adding a dimension means adding a variant here and following the compiler.

/// What a session keeps of its first pageview.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attr {
    Hostname,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    Country,
    Browser,
    Os,
    Device,
    Language,
    Screen,
}

/// How many [`Attr`]s there are.
pub const ATTRS: usize = 13;

impl Attr {
    pub const ALL: [Attr; ATTRS] = [
        Attr::Hostname,
        Attr::Referrer,
        Attr::UtmSource,
        Attr::UtmMedium,
        Attr::UtmCampaign,
        Attr::UtmTerm,
        Attr::UtmContent,
        Attr::Country,
        Attr::Browser,
        Attr::Os,
        Attr::Device,
        Attr::Language,
        Attr::Screen,
    ];

    /// Its column in `visits` (migrations/0004_events.sql).
    pub const fn column(self) -> &'static str {
        match self {
            Attr::Hostname => "hostname",
            Attr::Referrer => "referrer",
            Attr::UtmSource => "utm_source",
            Attr::UtmMedium => "utm_medium",
            Attr::UtmCampaign => "utm_campaign",
            Attr::UtmTerm => "utm_term",
            Attr::UtmContent => "utm_content",
            Attr::Country => "country",
            Attr::Browser => "browser",
            Attr::Os => "os",
            Attr::Device => "device",
            Attr::Language => "language",
            Attr::Screen => "screen",
        }
    }

    /// Its name in the API, the export and the import (`utmSource`).
    pub const fn name(self) -> &'static str {
        self.dimension().param()
    }

    /// The filter that selects by it.
    pub const fn dimension(self) -> Dimension {
        match self {
            Attr::Hostname => Dimension::Hostname,
            Attr::Referrer => Dimension::Referrer,
            Attr::UtmSource => Dimension::UtmSource,
            Attr::UtmMedium => Dimension::UtmMedium,
            Attr::UtmCampaign => Dimension::UtmCampaign,
            Attr::UtmTerm => Dimension::UtmTerm,
            Attr::UtmContent => Dimension::UtmContent,
            Attr::Country => Dimension::Country,
            Attr::Browser => Dimension::Browser,
            Attr::Os => Dimension::Os,
            Attr::Device => Dimension::Device,
            Attr::Language => Dimension::Language,
            Attr::Screen => Dimension::Screen,
        }
    }

    /// The index of this attribute in an `[_; ATTRS]` array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether `visits` keeps the value itself (a country code) rather than a string's number.
    pub const fn is_code(self) -> bool {
        matches!(self, Attr::Country)
    }
}

/// A session's attributes as the statistics keep them: entry page, exit page, then every
/// [`Attr`] in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionAttr(u8);

/// How many [`SessionAttr`]s there are.
pub const SESSION_ATTRS: usize = 2 + ATTRS;

impl SessionAttr {
    pub const ENTRY_PAGE: SessionAttr = SessionAttr(0);
    pub const EXIT_PAGE: SessionAttr = SessionAttr(1);

    pub const fn of(attr: Attr) -> SessionAttr {
        SessionAttr(2 + attr as u8)
    }

    /// Every one, in their order.
    pub fn all() -> impl Iterator<Item = SessionAttr> {
        (0..SESSION_ATTRS as u8).map(SessionAttr)
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn attr(self) -> Option<Attr> {
        match self.0 {
            0 | 1 => None,
            n => Some(Attr::ALL[n as usize - 2]),
        }
    }

    /// Its column in `visits`.
    pub const fn column(self) -> &'static str {
        match self.attr() {
            Some(attr) => attr.column(),
            None if self.0 == 0 => "entry",
            None => "exit",
        }
    }
}

/// How a filter selects sessions (docs/definitions.md, "Selection").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selects {
    /// By an attribute of the session itself.
    Session(SessionAttr),
    /// Sessions with a pageview of that path (and then only those pageviews count).
    Path,
    /// Sessions with a pageview on that hostname (and then only those pageviews count).
    Hostname,
    /// Sessions with an event of that name (`(none)`: without any event).
    Event,
}

/// A filter of the statistics routes, by its query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    Hostname,
    Path,
    EntryPage,
    ExitPage,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    Country,
    Browser,
    Os,
    Device,
    Language,
    Screen,
    Event,
}

impl Dimension {
    /// In the order of the API reference.
    pub const ALL: [Dimension; 17] = [
        Dimension::Hostname,
        Dimension::Path,
        Dimension::EntryPage,
        Dimension::ExitPage,
        Dimension::Referrer,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::UtmTerm,
        Dimension::UtmContent,
        Dimension::Country,
        Dimension::Browser,
        Dimension::Os,
        Dimension::Device,
        Dimension::Language,
        Dimension::Screen,
        Dimension::Event,
    ];

    /// The query parameter.
    pub const fn param(self) -> &'static str {
        match self {
            Dimension::Hostname => "hostname",
            Dimension::Path => "path",
            Dimension::EntryPage => "entryPage",
            Dimension::ExitPage => "exitPage",
            Dimension::Referrer => "referrer",
            Dimension::UtmSource => "utmSource",
            Dimension::UtmMedium => "utmMedium",
            Dimension::UtmCampaign => "utmCampaign",
            Dimension::UtmTerm => "utmTerm",
            Dimension::UtmContent => "utmContent",
            Dimension::Country => "country",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::Device => "device",
            Dimension::Language => "language",
            Dimension::Screen => "screen",
            Dimension::Event => "event",
        }
    }

    pub fn from_param(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.param() == name)
    }

    pub const fn selects(self) -> Selects {
        match self {
            Dimension::Hostname => Selects::Hostname,
            Dimension::Path => Selects::Path,
            Dimension::Event => Selects::Event,
            Dimension::EntryPage => Selects::Session(SessionAttr::ENTRY_PAGE),
            Dimension::ExitPage => Selects::Session(SessionAttr::EXIT_PAGE),
            Dimension::Referrer => Selects::Session(SessionAttr::of(Attr::Referrer)),
            Dimension::UtmSource => Selects::Session(SessionAttr::of(Attr::UtmSource)),
            Dimension::UtmMedium => Selects::Session(SessionAttr::of(Attr::UtmMedium)),
            Dimension::UtmCampaign => Selects::Session(SessionAttr::of(Attr::UtmCampaign)),
            Dimension::UtmTerm => Selects::Session(SessionAttr::of(Attr::UtmTerm)),
            Dimension::UtmContent => Selects::Session(SessionAttr::of(Attr::UtmContent)),
            Dimension::Country => Selects::Session(SessionAttr::of(Attr::Country)),
            Dimension::Browser => Selects::Session(SessionAttr::of(Attr::Browser)),
            Dimension::Os => Selects::Session(SessionAttr::of(Attr::Os)),
            Dimension::Device => Selects::Session(SessionAttr::of(Attr::Device)),
            Dimension::Language => Selects::Session(SessionAttr::of(Attr::Language)),
            Dimension::Screen => Selects::Session(SessionAttr::of(Attr::Screen)),
        }
    }

    /// The breakdown of this dimension.
    pub const fn report(self) -> Report {
        match self {
            Dimension::Hostname => Report::Hostnames,
            Dimension::Path => Report::Pages,
            Dimension::EntryPage => Report::EntryPages,
            Dimension::ExitPage => Report::ExitPages,
            Dimension::Referrer => Report::Referrers,
            Dimension::UtmSource => Report::UtmSources,
            Dimension::UtmMedium => Report::UtmMediums,
            Dimension::UtmCampaign => Report::UtmCampaigns,
            Dimension::UtmTerm => Report::UtmTerms,
            Dimension::UtmContent => Report::UtmContents,
            Dimension::Country => Report::Countries,
            Dimension::Browser => Report::Browsers,
            Dimension::Os => Report::Os,
            Dimension::Device => Report::Devices,
            Dimension::Language => Report::Languages,
            Dimension::Screen => Report::Screens,
            Dimension::Event => Report::Events,
        }
    }

    /// What the filter keeps, for the OpenAPI document.
    pub const fn describe(self) -> &'static str {
        match self.selects() {
            Selects::Session(_) => {
                "Filter: sessions whose attribute is this value, exact match; `(none)` selects the empty value"
            }
            Selects::Path => {
                "Filter: sessions with a pageview of this path; then only those pageviews count"
            }
            Selects::Hostname => {
                "Filter: sessions with a pageview on this hostname; then only those pageviews count"
            }
            Selects::Event => {
                "Filter: sessions with an event of this name, `(none)` for sessions without any event; on event-props and prop-keys, the event to describe"
            }
        }
    }
}

/// What a breakdown's rows count, which fixes their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counts {
    /// `{value, uniqueVisitors, totalPageviews, percentage}`.
    Pageviews,
    /// `{value, uniqueVisitors, totalSessions, bounceRate, percentage}`.
    Sessions,
    /// `{value, totalEvents, uniqueVisitors, percentage}`.
    Events,
}

/// What a breakdown groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// The counted pageviews by path.
    Paths,
    /// The counted pageviews by hostname.
    Hostnames,
    /// The counted sessions by one of their attributes.
    Sessions(SessionAttr),
    /// The counted events by name.
    Events,
    /// The counted events of one name by the value of one prop.
    EventProps,
}

/// A breakdown route under `stats/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Report {
    Pages,
    Hostnames,
    EntryPages,
    ExitPages,
    Referrers,
    UtmSources,
    UtmMediums,
    UtmCampaigns,
    UtmTerms,
    UtmContents,
    Countries,
    Browsers,
    Os,
    Devices,
    Languages,
    Screens,
    Events,
    EventProps,
}

impl Report {
    /// In the order of the API reference.
    pub const ALL: [Report; 18] = [
        Report::Pages,
        Report::Hostnames,
        Report::EntryPages,
        Report::ExitPages,
        Report::Referrers,
        Report::UtmSources,
        Report::UtmMediums,
        Report::UtmCampaigns,
        Report::UtmTerms,
        Report::UtmContents,
        Report::Countries,
        Report::Browsers,
        Report::Os,
        Report::Devices,
        Report::Languages,
        Report::Screens,
        Report::Events,
        Report::EventProps,
    ];

    /// Its path under `stats/`.
    pub const fn path(self) -> &'static str {
        match self {
            Report::Pages => "pages",
            Report::Hostnames => "hostnames",
            Report::EntryPages => "entry-pages",
            Report::ExitPages => "exit-pages",
            Report::Referrers => "referrers",
            Report::UtmSources => "utm-sources",
            Report::UtmMediums => "utm-mediums",
            Report::UtmCampaigns => "utm-campaigns",
            Report::UtmTerms => "utm-terms",
            Report::UtmContents => "utm-contents",
            Report::Countries => "countries",
            Report::Browsers => "browsers",
            Report::Os => "os",
            Report::Devices => "devices",
            Report::Languages => "languages",
            Report::Screens => "screens",
            Report::Events => "events",
            Report::EventProps => "event-props",
        }
    }

    pub const fn grouping(self) -> Grouping {
        match self {
            Report::Pages => Grouping::Paths,
            Report::Hostnames => Grouping::Hostnames,
            Report::Events => Grouping::Events,
            Report::EventProps => Grouping::EventProps,
            Report::EntryPages => Grouping::Sessions(SessionAttr::ENTRY_PAGE),
            Report::ExitPages => Grouping::Sessions(SessionAttr::EXIT_PAGE),
            Report::Referrers => Grouping::Sessions(SessionAttr::of(Attr::Referrer)),
            Report::UtmSources => Grouping::Sessions(SessionAttr::of(Attr::UtmSource)),
            Report::UtmMediums => Grouping::Sessions(SessionAttr::of(Attr::UtmMedium)),
            Report::UtmCampaigns => Grouping::Sessions(SessionAttr::of(Attr::UtmCampaign)),
            Report::UtmTerms => Grouping::Sessions(SessionAttr::of(Attr::UtmTerm)),
            Report::UtmContents => Grouping::Sessions(SessionAttr::of(Attr::UtmContent)),
            Report::Countries => Grouping::Sessions(SessionAttr::of(Attr::Country)),
            Report::Browsers => Grouping::Sessions(SessionAttr::of(Attr::Browser)),
            Report::Os => Grouping::Sessions(SessionAttr::of(Attr::Os)),
            Report::Devices => Grouping::Sessions(SessionAttr::of(Attr::Device)),
            Report::Languages => Grouping::Sessions(SessionAttr::of(Attr::Language)),
            Report::Screens => Grouping::Sessions(SessionAttr::of(Attr::Screen)),
        }
    }

    pub const fn counts(self) -> Counts {
        match self.grouping() {
            Grouping::Paths | Grouping::Hostnames => Counts::Pageviews,
            Grouping::Sessions(_) => Counts::Sessions,
            Grouping::Events | Grouping::EventProps => Counts::Events,
        }
    }

    /// The route's summary and what it groups, for the OpenAPI document.
    pub const fn describe(self) -> (&'static str, &'static str) {
        match self {
            Report::Pages => (
                "Pages by unique visitors",
                "Groups the counted pageviews by path: uniqueVisitors and totalPageviews per path.",
            ),
            Report::Hostnames => (
                "Hostnames by unique visitors",
                "Groups the counted pageviews by hostname.",
            ),
            Report::EntryPages => (
                "Entry pages",
                "Groups the counted sessions by their first pageview's path: uniqueVisitors (distinct visitors of the group's sessions), totalSessions and bounceRate per value.",
            ),
            Report::ExitPages => (
                "Exit pages",
                "Groups the counted sessions by their last pageview's path.",
            ),
            Report::Referrers => (
                "Referrers",
                "Groups the counted sessions by referrer host; null is direct traffic.",
            ),
            Report::UtmSources => (
                "UTM sources",
                "Groups the counted sessions by utm_source; null is not set.",
            ),
            Report::UtmMediums => (
                "UTM mediums",
                "Groups the counted sessions by utm_medium; null is not set.",
            ),
            Report::UtmCampaigns => (
                "UTM campaigns",
                "Groups the counted sessions by utm_campaign; null is not set.",
            ),
            Report::UtmTerms => (
                "UTM terms",
                "Groups the counted sessions by utm_term; null is not set.",
            ),
            Report::UtmContents => (
                "UTM contents",
                "Groups the counted sessions by utm_content; null is not set.",
            ),
            Report::Countries => (
                "Countries",
                "Groups the counted sessions by country (ISO 3166-1 alpha-2); null is unknown.",
            ),
            Report::Browsers => ("Browsers", "Groups the counted sessions by browser."),
            Report::Os => (
                "Operating systems",
                "Groups the counted sessions by operating system.",
            ),
            Report::Devices => (
                "Devices",
                "Groups the counted sessions by device: desktop, mobile, tablet.",
            ),
            Report::Languages => (
                "Languages",
                "Groups the counted sessions by browser language.",
            ),
            Report::Screens => (
                "Screen sizes",
                "Groups the counted sessions by screen class: xs (< 576 px), sm (576–767), md (768–991), lg (992–1439), xl (≥ 1440).",
            ),
            Report::Events => (
                "Custom events",
                "Groups the events whose time is in the range by name: totalEvents and uniqueVisitors (distinct visitors who sent them). Without filters every event counts (also of visitors without a pageview, such as server-side events); with filters only those of selected sessions.",
            ),
            Report::EventProps => (
                "Values of one property of one event",
                "`event` (the event's name) and `prop` (a property key) are required; groups that event's events (counted as for `events`) by the property's value, null for events without it. Here `event` selects no sessions.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dimension_has_its_own_parameter_and_report() {
        for (i, d) in Dimension::ALL.iter().enumerate() {
            assert_eq!(Dimension::from_param(d.param()), Some(*d));
            for other in &Dimension::ALL[i + 1..] {
                assert_ne!(d.param(), other.param());
                assert_ne!(d.report(), other.report());
            }
        }
        // Every report but event-props belongs to exactly one dimension.
        for r in Report::ALL {
            let owners = Dimension::ALL.iter().filter(|d| d.report() == r).count();
            assert_eq!(owners, usize::from(r != Report::EventProps), "{r:?}");
        }
    }

    #[test]
    fn attributes_and_session_attributes_agree() {
        for attr in Attr::ALL {
            assert_eq!(Attr::ALL[attr.index()], attr);
            assert_eq!(SessionAttr::of(attr).attr(), Some(attr));
            assert_eq!(
                attr.dimension().selects(),
                match attr {
                    Attr::Hostname => Selects::Hostname,
                    _ => Selects::Session(SessionAttr::of(attr)),
                }
            );
        }
        let columns: Vec<&str> = SessionAttr::all().map(SessionAttr::column).collect();
        assert_eq!(columns[..3], ["entry", "exit", "hostname"]);
        assert_eq!(columns.len(), SESSION_ATTRS);
    }
}
