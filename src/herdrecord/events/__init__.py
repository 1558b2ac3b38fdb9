"""Animal events (treatments, moves, departures, tags): their table, their rules and CSV import."""
