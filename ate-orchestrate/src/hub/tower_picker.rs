//! [`HubPicker`]: the hub behind the tower [`BalanceLayer`](crate::layer::BalanceLayer).

use super::pick::{Pick, PickOptions};
use super::service_hub::ServiceHub;
use crate::registry::{Instance, ServiceName};
use ate_core::Principal;

/// The hub as a [`Picker`](crate::layer::Picker) for the tower
/// [`BalanceLayer`](crate::layer::BalanceLayer): every attempt is a [`ServiceHub::pick`]
/// of one service for one principal, with breakers, ejection, metrics and failover.
#[derive(Debug, Clone)]
pub struct HubPicker {
    hub: ServiceHub,
    principal: Principal,
    service: ServiceName,
    options: PickOptions,
}

impl HubPicker {
    /// Picks instances of `service` as `principal` with `options` (a request's key header,
    /// when the layer has one, replaces [`PickOptions::key`]).
    pub fn new(
        hub: ServiceHub,
        principal: Principal,
        service: ServiceName,
        options: PickOptions,
    ) -> Self {
        HubPicker {
            hub,
            principal,
            service,
            options,
        }
    }
}

impl crate::layer::Picker<Instance> for HubPicker {
    fn pick<'a>(&'a self, key: Option<&'a [u8]>) -> crate::layer::PickFuture<'a, Instance> {
        Box::pin(async move {
            let mut options = self.options.clone();
            if let Some(key) = key {
                options.key = Some(key.to_vec());
            }
            self.hub
                .pick(&self.principal, &self.service, options)
                .await
                .map(Pick::into_guard)
        })
    }
}
