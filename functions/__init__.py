"""TrapAlert: real-time anti-poaching alerts from camera-trap emails."""
