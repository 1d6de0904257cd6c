"""What people read: the terminal summary and headline, statistics, and the report's figures."""
