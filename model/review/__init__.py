"""Human review of the photos the workflow sent to `review/`: the queue, the answers under
`labels/` (an A2I-like JSON document per photo), the `scones review` web page, and the
figures that training and the monitoring report take from the answers."""
