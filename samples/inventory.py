"""A small module to complete in the demo: an inventory of items with prices."""

from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    quantity: int


def total_value(items: list[Item]) -> float:
    """Sum of price times quantity over all items."""
    return sum(item.price * item.quantity for item in items)


def most_expensive(items: list[Item]) -> Item | None:
    """The item with the highest unit price, or None for an empty list."""
    if not items:
        return None
    return max(items, key=lambda item: item.price)


def cheapest(items: list[Item]) -> Item | None:
    """The item with the lowest unit price, or None for an empty list."""
