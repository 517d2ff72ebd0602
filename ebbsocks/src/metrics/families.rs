//! One call per metric family: a thin layer over prometheus-client's
//! [`DescriptorEncoder`], so the collector reads as a list of metrics and
//! adding one is a line. The encoder appends `_total` to counters and the
//! unit (`_seconds`, `_bytes`) to names given a unit; names here carry
//! neither.

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::stats::HistogramSnapshot;

/// Writes metric families to one scrape's output.
pub(super) struct Families<'a, 'e> {
    encoder: &'a mut DescriptorEncoder<'e>,
}

impl<'a, 'e> Families<'a, 'e> {
    pub(super) fn new(encoder: &'a mut DescriptorEncoder<'e>) -> Self {
        Self { encoder }
    }

    pub(super) fn counter(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: u64,
    ) -> fmt::Result {
        let unit = unit.as_ref();
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, unit, MetricType::Counter)?;
        counter_value(&mut metric, value)
    }

    /// A counter with one label, one sample per `(label value, count)`.
    pub(super) fn counter_by<L: EncodeLabelValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        label: &str,
        values: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        let unit = unit.as_ref();
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, unit, MetricType::Counter)?;
        for (label_value, count) in values {
            let labels = [(label, label_value)];
            counter_value(&mut metric.encode_family(&labels)?, count)?;
        }
        Ok(())
    }

    /// A counter labelled by the keys of one of the `stats` maps (the
    /// common case: failures by reason, sessions by outcome).
    pub(super) fn counter_map(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        map: &BTreeMap<&'static str, u64>,
    ) -> fmt::Result {
        let values = map.iter().map(|(key, count)| (*key, *count));
        self.counter_by(name, help, None, label, values)
    }

    pub(super) fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: impl EncodeGaugeValue,
    ) -> fmt::Result {
        let unit = unit.as_ref();
        self.encoder
            .encode_descriptor(name, help, unit, MetricType::Gauge)?
            .encode_gauge(&value)
    }

    /// A gauge that is left out when the reading failed (`None`), rather
    /// than reported as a zero that would look like a real value.
    pub(super) fn gauge_if_read(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: Option<impl EncodeGaugeValue>,
    ) -> fmt::Result {
        match value {
            Some(value) => self.gauge(name, help, unit, value),
            None => Ok(()),
        }
    }

    /// A histogram in seconds, with one label.
    pub(super) fn seconds_histogram_by<'h>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'h str, &'h HistogramSnapshot)>,
    ) -> fmt::Result {
        let unit = Unit::Seconds;
        let mut metric =
            self.encoder
                .encode_descriptor(name, help, Some(&unit), MetricType::Histogram)?;
        for (label_value, histogram) in values {
            let labels = [(label, label_value)];
            histogram_value(&mut metric.encode_family(&labels)?, histogram)?;
        }
        Ok(())
    }

    /// A histogram in seconds, without labels.
    pub(super) fn seconds_histogram(
        &mut self,
        name: &str,
        help: &str,
        histogram: &HistogramSnapshot,
    ) -> fmt::Result {
        let unit = Unit::Seconds;
        let mut metric =
            self.encoder
                .encode_descriptor(name, help, Some(&unit), MetricType::Histogram)?;
        histogram_value(&mut metric, histogram)
    }

    /// An info metric (`<name>_info{...} 1`).
    pub(super) fn info(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) -> fmt::Result {
        self.encoder
            .encode_descriptor(name, help, None, MetricType::Info)?
            .encode_info(&labels)
    }
}

fn counter_value(metric: &mut MetricEncoder<'_>, value: u64) -> fmt::Result {
    metric.encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

fn histogram_value(metric: &mut MetricEncoder<'_>, histogram: &HistogramSnapshot) -> fmt::Result {
    metric.encode_histogram::<NoLabelSet>(
        histogram.sum_seconds,
        histogram.count,
        &histogram.buckets,
        None,
    )
}
