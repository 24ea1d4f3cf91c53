"""SQL for billable metrics and price models, and the code that loads and checks it."""
