//! The records the statistics count: sessions, pageviews and events as blocks hold them and
//! as they are read from the row tables, and the one place that says what a session
//! contributes to a figure (docs/definitions.md, "Sessions" and "Metrics").

use std::sync::LazyLock;

use super::dimension::{Attr, SESSION_ATTRS, SessionAttr};

/// A country code as a number, so that it sits among the string numbers: its two letters.
pub fn country_number(code: &str) -> Option<i64> {
    let b = code.as_bytes();
    (b.len() == 2).then(|| -(i64::from(b[0]) << 8 | i64::from(b[1])))
}

/// The code of a [`country_number`].
pub fn country_code(number: i64) -> String {
    let n = -number;
    String::from_utf8_lossy(&[(n >> 8) as u8, (n & 0xff) as u8]).into_owned()
}

/// A session as the statistics see it. `visitor` is the visitor's number (see
/// `super::blocks`).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub visitor: i64,
    pub first_at: i64,
    pub last_at: i64,
    /// Its first pageview; `None` for a session without one (never counted).
    pub at: Option<i64>,
    pub pageviews: i64,
    pub events: i64,
    /// String numbers (country numbers for the country), by [`SessionAttr::index`].
    pub attrs: [Option<i64>; SESSION_ATTRS],
}

/// What one session adds to the session figures of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    /// A bounce: exactly one pageview in the whole session.
    pub bounce: bool,
    /// Its last activity − its first activity.
    pub duration_ms: i64,
    /// All its pageviews, also those after a range's end.
    pub views: i64,
}

impl Session {
    /// The one definition of a session's bounce, duration and views.
    pub fn facts(&self) -> SessionFacts {
        SessionFacts {
            bounce: self.pageviews == 1,
            duration_ms: self.last_at - self.first_at,
            views: self.pageviews,
        }
    }

    pub fn attr(&self, attr: SessionAttr) -> Option<i64> {
        self.attrs[attr.index()]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pageview {
    pub at: i64,
    pub visit: i64,
    pub visitor: i64,
    pub hostname: i64,
    pub path: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub at: i64,
    pub visit: i64,
    pub visitor: i64,
    pub name: i64,
    pub props: Option<String>,
}

/// The columns of `visits` that [`session_from_row`] reads.
pub static SESSION_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let mut columns = vec!["first_at", "last_at", "pv_first_at", "pageviews", "events"];
    columns.extend(SessionAttr::all().map(SessionAttr::column));
    columns.join(", ")
});

/// A session from [`SESSION_COLUMNS`] of a row, starting at column `from`; its visitor number
/// is left 0.
pub fn session_from_row(r: &rusqlite::Row, from: usize) -> rusqlite::Result<Session> {
    let mut attrs = [None; SESSION_ATTRS];
    for (attr, slot) in SessionAttr::all().zip(attrs.iter_mut()) {
        let column = from + 5 + attr.index();
        *slot = if attr.attr().is_some_and(Attr::is_code) {
            r.get::<_, Option<String>>(column)?
                .and_then(|c| country_number(&c))
        } else {
            r.get(column)?
        };
    }
    Ok(Session {
        visitor: 0,
        first_at: r.get(from)?,
        last_at: r.get(from + 1)?,
        at: r.get(from + 2)?,
        pageviews: r.get(from + 3)?,
        events: r.get(from + 4)?,
        attrs,
    })
}
