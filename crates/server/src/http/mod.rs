//! The HTTP side of the engine: the webhook ingress, the admin API with the console, the one
//! error shape both answer with, and the listener that accepts connections. The only module that
//! speaks in statuses: below it, dispatch and the catalog answer in domain outcomes.

pub mod admin;
pub mod api_error;
pub mod ingress;
pub mod listener;
