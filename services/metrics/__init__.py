"""Herald metrics processor: the event streams in tumbling windows, for analysts and Prometheus."""
