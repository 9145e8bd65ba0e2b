"""Privacy-friendly web statistics: a cookie-free beacon, truncated IPs, daily salts, roll-ups."""
