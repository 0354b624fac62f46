"""`edgebuild optimize`: the smallest artifact that meets the budgets, found by ordinary cached builds.

space: the candidates of the profile's [optimize] table and what each costs to try; search: cheap
candidates first, early rejection against hard budgets, successive halving for trained ones, on any
executor; pareto: the trade-off front, its table and chart.
"""
