//! Publishing jobs to RabbitMQ with publisher confirms, and the dispatcher that sends the jobs
//! a failed publish (or a crashed api) left behind.

use crate::db::DbPool;
use crate::schema::requests;
use common::JobMessage;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::Duration;
use tokio::sync::Mutex;

const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not answer in time")]
    Timeout,
    #[error("the broker refused the message")]
    Nacked,
}

/// Declare the durable job queue (api and workers declare it the same way).
pub async fn declare_queue(channel: &Channel, queue: &str) -> Result<lapin::Queue, lapin::Error> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

pub struct Publisher {
    amqp_url: String,
    queue: String,
    channel: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(amqp_url: &str, queue: &str) -> Self {
        Self {
            amqp_url: amqp_url.to_string(),
            queue: queue.to_string(),
            channel: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel), PublishError> {
        let connect = async {
            let conn = Connection::connect(&self.amqp_url, ConnectionProperties::default()).await?;
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            declare_queue(&channel, &self.queue).await?;
            Ok::<_, lapin::Error>((conn, channel))
        };
        Ok(tokio::time::timeout(BROKER_TIMEOUT, connect)
            .await
            .map_err(|_| PublishError::Timeout)??)
    }

    /// Publish one job and wait for the broker's confirmation. A broken connection is dropped
    /// and re-made on the next call.
    pub async fn publish(&self, request_id: i64) -> Result<(), PublishError> {
        let mut guard = self.channel.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(conn, ch)| !conn.status().connected() || !ch.status().connected())
        {
            *guard = None;
            *guard = Some(self.connect().await?);
        }
        let (_, channel) = guard.as_ref().expect("connected above");
        let payload = serde_json::to_vec(&JobMessage { request_id }).expect("job serializes");
        let publish = async {
            channel
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await?
                .await
        };
        let result = match tokio::time::timeout(BROKER_TIMEOUT, publish).await {
            Ok(Ok(confirmation)) if confirmation.is_ack() => Ok(()),
            Ok(Ok(_)) => Err(PublishError::Nacked),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(PublishError::Timeout),
        };
        if result.is_err() {
            *guard = None;
        }
        result
    }

    /// Whether the broker can be reached now.
    pub async fn check(&self) -> bool {
        let mut guard = self.channel.lock().await;
        if guard
            .as_ref()
            .is_some_and(|(conn, _)| conn.status().connected())
        {
            return true;
        }
        match self.connect().await {
            Ok(pair) => {
                *guard = Some(pair);
                true
            }
            Err(_) => false,
        }
    }

    /// Number of consumers (workers) on the queue, if the broker answers.
    pub async fn consumer_count(&self) -> Option<u32> {
        if !self.check().await {
            return None;
        }
        let guard = self.channel.lock().await;
        let (_, channel) = guard.as_ref()?;
        let declare = channel.queue_declare(
            self.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        );
        match tokio::time::timeout(BROKER_TIMEOUT, declare).await {
            Ok(Ok(queue)) => Some(queue.consumer_count()),
            _ => None,
        }
    }
}

/// Publish one request's job and record that it went out.
pub async fn dispatch(
    pool: &DbPool,
    publisher: &Publisher,
    request_id: i64,
) -> Result<(), PublishError> {
    publisher.publish(request_id).await?;
    if let Ok(mut conn) = pool.get().await {
        let _ = diesel::update(requests::table.find(request_id))
            .set(requests::dispatched_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await;
    }
    Ok(())
}

/// How long the api that created a request has to publish it before a dispatcher steps in.
const DISPATCH_GRACE: Duration = Duration::from_secs(5);

/// Forever: publish the jobs of in-progress requests whose job never reached the broker.
pub async fn run_dispatcher(
    pool: DbPool,
    publisher: std::sync::Arc<Publisher>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = dispatch_pending(&pool, &publisher).await {
            tracing::debug!(error = %e, "dispatcher could not run");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

async fn dispatch_pending(pool: &DbPool, publisher: &Publisher) -> Result<(), DispatchError> {
    let mut conn = pool.get().await?;
    conn.transaction::<_, DispatchError, _>(async |conn| {
        let grace = chrono::Utc::now().naive_utc()
            - chrono::Duration::from_std(DISPATCH_GRACE).expect("small");
        let ids: Vec<i64> = requests::table
            .select(requests::id)
            .filter(requests::dispatched_at.is_null())
            .filter(requests::state.eq("in_progress"))
            .filter(requests::created.lt(grace))
            .order(requests::id)
            .limit(100)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        for id in ids {
            publisher.publish(id).await?;
            tracing::info!(
                request_id = id,
                "dispatched a request whose job had not reached the broker"
            );
            diesel::update(requests::table.find(id))
                .set(requests::dispatched_at.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
        }
        Ok(())
    })
    .await
}
