//! Stores and accounts chosen at run time: dyn-compatible counterparts of
//! [`Store`], [`Accounts`] and [`AccountAdmin`].
//!
//! Those traits return `impl Future`, so a decision allocates nothing, but
//! they cannot be made into trait objects. [`DynStore`], [`DynAccounts`] and
//! [`DynAccountAdmin`] are the same methods returning a [`BoxFuture`] (one
//! allocation per call). Every [`Store`] is a [`DynStore`], every
//! [`Accounts`] a [`DynAccounts`] and every [`AccountAdmin`] a
//! [`DynAccountAdmin`]; and the trait objects behind an `Arc` or a `Box`
//! implement the original traits again, so anything that takes a [`Store`]
//! (the enforcement layer, [`store::decide`](crate::store::decide)) takes
//! an `Arc<dyn DynStore>` as well:
//!
//! ```
//! use std::sync::Arc;
//! use quota_core::dynamic::{DynAccountAdmin, DynStore};
//! use quota_core::account::{AccountAdmin, MemoryAccounts, NewAccount};
//! use quota_core::policy::{Money, Policy, Request};
//! use quota_core::{store, MemoryStore, Timestamp};
//!
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     // These stores' futures are always ready: poll once.
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     match std::pin::pin!(f).poll(&mut cx) { std::task::Poll::Ready(v) => v, std::task::Poll::Pending => unreachable!() }
//! # }
//! # block_on(async {
//! // Chosen at run time, without an enum of the caller's own: with
//! // quota-redis, `if let Some(url) = redis_url { Arc::new(RedisStore::connect(url, config).await?) }`.
//! let store: Arc<dyn DynStore> = Arc::new(MemoryStore::new());
//! let accounts: Arc<dyn DynAccountAdmin> = Arc::new(MemoryAccounts::new());
//!
//! let new = NewAccount { id: "acct-1".into(), api_key: "k-1".into(), tier: "basic".into(), credit: Money::ZERO };
//! accounts.create(new, Timestamp::EPOCH).await.unwrap();
//! let policy = Policy::seed();
//! let plan = policy.plan(&Request { account: "acct-1", tier: "basic", endpoint: "txt2img", cost: 1 }).unwrap();
//! let decision = store::decide(&store, &plan, Timestamp::from_secs(1_700_000_000)).await.unwrap();
//! assert!(decision.is_admitted());
//! # });
//! ```
//!
//! The core depends on no futures crate: [`BoxFuture`] is spelled out here.

use core::future::Future;
use core::pin::Pin;
use std::sync::Arc;

use crate::account::{
    Account, AccountAdmin, AccountError, AccountUpdate, Accounts, Charge, Identity, KeyInfo,
    NewAccount, NewKey,
};
use crate::policy::{Money, Plan};
use crate::{Outcomes, Receipt, Store, StoreError, Timestamp};

/// A boxed, `Send` future: what the dyn-compatible traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Store`] with boxed futures, so it can be a trait object
/// (`Arc<dyn DynStore>`). Implemented for every [`Store`]; use the trait
/// object through [`Store`], which `Arc<dyn DynStore>` and
/// `Box<dyn DynStore>` implement.
pub trait DynStore: Send + Sync {
    /// [`Store::decide`], boxed.
    fn decide_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Outcomes, StoreError>>;

    /// [`Store::peek`], boxed.
    fn peek_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Outcomes, StoreError>>;

    /// [`Store::decide_with_receipt`], boxed.
    fn decide_with_receipt_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Receipt, StoreError>>;

    /// [`Store::refund`], boxed.
    fn refund_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// [`Store::answers_at_once`].
    fn answers_at_once(&self) -> bool;
}

impl<T: Store> DynStore for T {
    fn decide_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Outcomes, StoreError>> {
        Box::pin(Store::decide(self, plan, now))
    }

    fn peek_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Outcomes, StoreError>> {
        Box::pin(Store::peek(self, plan, now))
    }

    fn decide_with_receipt_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Receipt, StoreError>> {
        Box::pin(Store::decide_with_receipt(self, plan, now))
    }

    fn refund_boxed<'a>(
        &'a self,
        plan: &'a Plan<'_>,
        receipt: &'a Receipt,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::refund(self, plan, receipt, now))
    }

    fn answers_at_once(&self) -> bool {
        Store::answers_at_once(self)
    }
}

/// [`Accounts`] with boxed futures, so it can be a trait object
/// (`Arc<dyn DynAccounts>`). Implemented for every [`Accounts`]; use the
/// trait object through [`Accounts`], which `Arc<dyn DynAccounts>` and
/// `Box<dyn DynAccounts>` implement.
pub trait DynAccounts: Send + Sync {
    /// [`Accounts::resolve`], boxed.
    fn resolve_boxed<'a>(
        &'a self,
        api_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Identity>, AccountError>>;

    /// [`Accounts::charge`], boxed.
    fn charge_boxed<'a>(
        &'a self,
        account: &'a str,
        price: Money,
    ) -> BoxFuture<'a, Result<Charge, AccountError>>;

    /// [`Accounts::refund`], boxed.
    fn refund_boxed<'a>(
        &'a self,
        account: &'a str,
        amount: Money,
    ) -> BoxFuture<'a, Result<(), AccountError>>;

    /// [`Accounts::answers_at_once`].
    fn answers_at_once(&self) -> bool;
}

impl<T: Accounts> DynAccounts for T {
    fn resolve_boxed<'a>(
        &'a self,
        api_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Identity>, AccountError>> {
        Box::pin(Accounts::resolve(self, api_key))
    }

    fn charge_boxed<'a>(
        &'a self,
        account: &'a str,
        price: Money,
    ) -> BoxFuture<'a, Result<Charge, AccountError>> {
        Box::pin(Accounts::charge(self, account, price))
    }

    fn refund_boxed<'a>(
        &'a self,
        account: &'a str,
        amount: Money,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(Accounts::refund(self, account, amount))
    }

    fn answers_at_once(&self) -> bool {
        Accounts::answers_at_once(self)
    }
}

/// [`AccountAdmin`] with boxed futures, so it can be a trait object
/// (`Arc<dyn DynAccountAdmin>`). Implemented for every [`AccountAdmin`];
/// use the trait object through [`Accounts`] and [`AccountAdmin`], which
/// `Arc<dyn DynAccountAdmin>` and `Box<dyn DynAccountAdmin>` implement.
pub trait DynAccountAdmin: DynAccounts {
    /// [`AccountAdmin::create`], boxed.
    fn create_boxed(
        &self,
        new: NewAccount,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Account, AccountError>>;

    /// [`AccountAdmin::get`], boxed.
    fn get_boxed<'a>(&'a self, id: &'a str)
        -> BoxFuture<'a, Result<Option<Account>, AccountError>>;

    /// [`AccountAdmin::record_payment`], boxed.
    fn record_payment_boxed<'a>(
        &'a self,
        id: &'a str,
        amount: Money,
        tier: &'a str,
    ) -> BoxFuture<'a, Result<Account, AccountError>>;

    /// [`AccountAdmin::list`], boxed.
    fn list_boxed<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
        tier: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Account>, AccountError>>;

    /// [`AccountAdmin::update`], boxed.
    fn update_boxed<'a>(
        &'a self,
        id: &'a str,
        change: AccountUpdate,
    ) -> BoxFuture<'a, Result<Account, AccountError>>;

    /// [`AccountAdmin::delete`], boxed.
    fn delete_boxed<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), AccountError>>;

    /// [`AccountAdmin::add_key`], boxed.
    fn add_key_boxed<'a>(
        &'a self,
        account: &'a str,
        key: NewKey,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<KeyInfo, AccountError>>;

    /// [`AccountAdmin::list_keys`], boxed.
    fn list_keys_boxed<'a>(
        &'a self,
        account: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<KeyInfo>, AccountError>>;

    /// [`AccountAdmin::revoke_key`], boxed.
    fn revoke_key_boxed<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountError>>;

    /// [`AccountAdmin::expire_key`], boxed.
    fn expire_key_boxed<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<KeyInfo, AccountError>>;
}

impl<T: AccountAdmin> DynAccountAdmin for T {
    fn create_boxed(
        &self,
        new: NewAccount,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Account, AccountError>> {
        Box::pin(AccountAdmin::create(self, new, now))
    }

    fn get_boxed<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Account>, AccountError>> {
        Box::pin(AccountAdmin::get(self, id))
    }

    fn record_payment_boxed<'a>(
        &'a self,
        id: &'a str,
        amount: Money,
        tier: &'a str,
    ) -> BoxFuture<'a, Result<Account, AccountError>> {
        Box::pin(AccountAdmin::record_payment(self, id, amount, tier))
    }

    fn list_boxed<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
        tier: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Account>, AccountError>> {
        Box::pin(AccountAdmin::list(self, after, limit, tier))
    }

    fn update_boxed<'a>(
        &'a self,
        id: &'a str,
        change: AccountUpdate,
    ) -> BoxFuture<'a, Result<Account, AccountError>> {
        Box::pin(AccountAdmin::update(self, id, change))
    }

    fn delete_boxed<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(AccountAdmin::delete(self, id))
    }

    fn add_key_boxed<'a>(
        &'a self,
        account: &'a str,
        key: NewKey,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<KeyInfo, AccountError>> {
        Box::pin(AccountAdmin::add_key(self, account, key, now))
    }

    fn list_keys_boxed<'a>(
        &'a self,
        account: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<KeyInfo>, AccountError>> {
        Box::pin(AccountAdmin::list_keys(self, account, now))
    }

    fn revoke_key_boxed<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(AccountAdmin::revoke_key(self, account, key))
    }

    fn expire_key_boxed<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<KeyInfo, AccountError>> {
        Box::pin(AccountAdmin::expire_key(self, account, key, at))
    }
}

/// `Store` for a pointer (`Arc`, `Box`) to a `dyn DynStore`.
macro_rules! store_for_pointer {
    ($($pointer:ident),+) => {$(
        impl Store for $pointer<dyn DynStore> {
            fn decide<'a>(
                &'a self,
                plan: &'a Plan<'_>,
                now: Timestamp,
            ) -> impl Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
                (**self).decide_boxed(plan, now)
            }

            fn peek<'a>(
                &'a self,
                plan: &'a Plan<'_>,
                now: Timestamp,
            ) -> impl Future<Output = Result<Outcomes, StoreError>> + Send + 'a {
                (**self).peek_boxed(plan, now)
            }

            fn decide_with_receipt<'a>(
                &'a self,
                plan: &'a Plan<'_>,
                now: Timestamp,
            ) -> impl Future<Output = Result<Receipt, StoreError>> + Send + 'a {
                (**self).decide_with_receipt_boxed(plan, now)
            }

            fn refund<'a>(
                &'a self,
                plan: &'a Plan<'_>,
                receipt: &'a Receipt,
                now: Timestamp,
            ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
                (**self).refund_boxed(plan, receipt, now)
            }

            fn answers_at_once(&self) -> bool {
                DynStore::answers_at_once(&**self)
            }
        }
    )+};
}

store_for_pointer!(Arc, Box);

/// `Accounts` for a pointer (`Arc`, `Box`) to a trait object (`dyn
/// DynAccounts`, `dyn DynAccountAdmin`). The futures are `async` blocks
/// around the boxed ones: they borrow the key and the pointer, two
/// lifetimes that one boxed future's cannot name.
macro_rules! accounts_for_pointer {
    ($($pointer:ident<dyn $object:ident>),+) => {$(
        impl Accounts for $pointer<dyn $object> {
            fn resolve(
                &self,
                api_key: &str,
            ) -> impl Future<Output = Result<Option<Identity>, AccountError>> + Send {
                async move { (**self).resolve_boxed(api_key).await }
            }

            fn charge(
                &self,
                account: &str,
                price: Money,
            ) -> impl Future<Output = Result<Charge, AccountError>> + Send {
                async move { (**self).charge_boxed(account, price).await }
            }

            fn refund(
                &self,
                account: &str,
                amount: Money,
            ) -> impl Future<Output = Result<(), AccountError>> + Send {
                async move { (**self).refund_boxed(account, amount).await }
            }

            fn answers_at_once(&self) -> bool {
                DynAccounts::answers_at_once(&**self)
            }
        }
    )+};
}

accounts_for_pointer!(
    Arc<dyn DynAccounts>,
    Box<dyn DynAccounts>,
    Arc<dyn DynAccountAdmin>,
    Box<dyn DynAccountAdmin>
);

/// `AccountAdmin` for a pointer (`Arc`, `Box`) to a `dyn DynAccountAdmin`.
macro_rules! account_admin_for_pointer {
    ($($pointer:ident),+) => {$(
        impl AccountAdmin for $pointer<dyn DynAccountAdmin> {
            fn create(
                &self,
                new: NewAccount,
                now: Timestamp,
            ) -> impl Future<Output = Result<Account, AccountError>> + Send {
                (**self).create_boxed(new, now)
            }

            fn get(
                &self,
                id: &str,
            ) -> impl Future<Output = Result<Option<Account>, AccountError>> + Send {
                async move { (**self).get_boxed(id).await }
            }

            fn record_payment(
                &self,
                id: &str,
                amount: Money,
                tier: &str,
            ) -> impl Future<Output = Result<Account, AccountError>> + Send {
                async move { (**self).record_payment_boxed(id, amount, tier).await }
            }

            fn list(
                &self,
                after: Option<&str>,
                limit: usize,
                tier: Option<&str>,
            ) -> impl Future<Output = Result<Vec<Account>, AccountError>> + Send {
                async move { (**self).list_boxed(after, limit, tier).await }
            }

            fn update(
                &self,
                id: &str,
                change: AccountUpdate,
            ) -> impl Future<Output = Result<Account, AccountError>> + Send {
                async move { (**self).update_boxed(id, change).await }
            }

            fn delete(&self, id: &str) -> impl Future<Output = Result<(), AccountError>> + Send {
                async move { (**self).delete_boxed(id).await }
            }

            fn add_key(
                &self,
                account: &str,
                key: NewKey,
                now: Timestamp,
            ) -> impl Future<Output = Result<KeyInfo, AccountError>> + Send {
                async move { (**self).add_key_boxed(account, key, now).await }
            }

            fn list_keys(
                &self,
                account: &str,
                now: Timestamp,
            ) -> impl Future<Output = Result<Vec<KeyInfo>, AccountError>> + Send {
                async move { (**self).list_keys_boxed(account, now).await }
            }

            fn revoke_key(
                &self,
                account: &str,
                key: &str,
            ) -> impl Future<Output = Result<(), AccountError>> + Send {
                async move { (**self).revoke_key_boxed(account, key).await }
            }

            fn expire_key(
                &self,
                account: &str,
                key: &str,
                at: Timestamp,
            ) -> impl Future<Output = Result<KeyInfo, AccountError>> + Send {
                async move { (**self).expire_key_boxed(account, key, at).await }
            }
        }
    )+};
}

account_admin_for_pointer!(Arc, Box);

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::account::MemoryAccounts;
    use crate::policy::{Policy, Request};
    use crate::MemoryStore;

    /// Polls a future that is ready at once (the memory stores' are).
    fn ready<F: Future>(f: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match core::pin::pin!(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the memory stores answer at once"),
        }
    }

    fn is_store<S: Store>(_: &S) {}
    fn is_admin<A: AccountAdmin>(_: &A) {}

    #[test]
    fn a_boxed_store_decides_as_the_store_it_holds() {
        let policy = Policy::seed();
        let plan = policy
            .plan(&Request {
                account: "a",
                tier: "basic",
                endpoint: "txt2img",
                cost: 1,
            })
            .unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let arc: Arc<dyn DynStore> = Arc::new(MemoryStore::new());
        let boxed: Box<dyn DynStore> = Box::new(MemoryStore::new());
        is_store(&arc);
        is_store(&boxed);
        let direct = MemoryStore::new();
        for _ in 0..4 {
            let want = ready(Store::decide(&direct, &plan, now)).unwrap();
            assert_eq!(ready(arc.decide(&plan, now)).unwrap(), want);
            assert_eq!(ready(boxed.decide(&plan, now)).unwrap(), want);
        }
        // The fourth was refused: peeking shows the budget spent.
        assert!(!ready(arc.peek(&plan, now)).unwrap()[0].admits);
    }

    #[test]
    fn boxed_accounts_answer_as_the_accounts_they_hold() {
        let admin: Arc<dyn DynAccountAdmin> = Arc::new(MemoryAccounts::new());
        is_admin(&admin);
        let new = NewAccount {
            id: "acct-1".into(),
            api_key: "k-1".into(),
            tier: "basic".into(),
            credit: Money::from_dollars(1),
        };
        ready(admin.create(new, Timestamp::EPOCH)).unwrap();
        let who = ready(admin.resolve("k-1")).unwrap().unwrap();
        assert_eq!(who.account, "acct-1");
        let charged = ready(admin.charge("acct-1", Money::from_micros(250_000))).unwrap();
        assert_eq!(
            charged,
            Charge::Charged {
                remaining: Money::from_micros(750_000)
            }
        );
        ready(admin.refund("acct-1", Money::from_micros(250_000))).unwrap();
        let paid =
            ready(admin.record_payment("acct-1", Money::from_dollars(2), "premium")).unwrap();
        assert_eq!(
            (paid.tier.as_str(), paid.credit),
            ("premium", Money::from_dollars(3))
        );
        assert_eq!(ready(admin.get("acct-1")).unwrap(), Some(paid));

        let accounts: Box<dyn DynAccounts> = Box::new(MemoryAccounts::new());
        assert_eq!(ready(accounts.resolve("k-1")).unwrap(), None);
        assert!(matches!(
            ready(accounts.charge("nobody", Money::ZERO)),
            Err(AccountError::NotFound(_))
        ));
    }
}
