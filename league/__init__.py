"""The league: population of snapshots, ratings, matchmaking, admission, and the game records."""
