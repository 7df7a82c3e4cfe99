//! A statistics request as the domain takes it: every value checked and typed by the HTTP edge
//! (`server::api::stats`), so nothing here parses text.

use super::dimension::Dimension;
use super::period::Period;

/// The value of a filter that selects the empty value (docs/definitions.md, "Filters").
pub const NONE: &str = "(none)";

/// How a filter compares (docs/definitions.md, "Filters").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `name=value`
    Is,
    /// `name!=value`
    IsNot,
    /// `name~=value`, ignoring case
    Contains,
    /// `name!~=value`, ignoring case
    NotContains,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Is, Op::IsNot, Op::Contains, Op::NotContains];

    /// What follows the name in the query string's key (`path!` of `path!=x`).
    pub const fn suffix(self) -> &'static str {
        match self {
            Op::Is => "",
            Op::IsNot => "!",
            Op::Contains => "~",
            Op::NotContains => "!~",
        }
    }
}

/// One filter: keep the sessions whose `dimension` compares by `op` with `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub dimension: Dimension,
    pub op: Op,
    pub value: String,
}

impl Filter {
    /// Its key in the query string and in `meta.filters` (`utmSource`, `path!`).
    pub fn key(&self) -> String {
        format!("{}{}", self.dimension.param(), self.op.suffix())
    }
}

/// The period, its zone, and the filters of a statistics request.
#[derive(Clone, Debug)]
pub struct Query {
    pub period: Period,
    /// The zone's name as given (or the website's).
    pub timezone: String,
    pub filters: Vec<Filter>,
}

/// The figures to compare with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The equally long period just before.
    Previous,
}

/// One page of a breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows per page, 1–1000.
    pub limit: u32,
    /// From 1.
    pub number: u32,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            limit: 10,
            number: 1,
        }
    }
}

/// What `event-props` describes: the values of prop `prop` of the events named `event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventProp {
    pub event: String,
    pub prop: String,
}
