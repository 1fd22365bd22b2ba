//! Lambda function: the brands job, started by an EventBridge schedule.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ig_collector::lambda::main(ig_collector::job::Job::Brands).await
}
