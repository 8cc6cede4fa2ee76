//! The broker crate's integration tests, one test binary (`cargo test -p switchyard-broker --test
//! integration`): the official CESQL TCK, the channel contract against the redb store, the CloudEvents
//! conformance fixtures, and the CRDs of `deploy/crds/` against the manifest decoder.

mod cesql_tck;
mod channel;
mod conformance;
mod crds;
